"""Local sources: OCI layout dir, oci-archive, docker-archive yield the same image."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.local import load_local
from hpcbridge.images.fetch.manifest import canonical_manifest, sha256_digest
from hpcbridge.images.refs import ArchiveRef
from tests.unit.images_support import (
    make_image,
    sha,
    write_docker_archive,
    write_oci_layout,
    write_tar_of_dir,
)

PLAT = ("linux", "amd64", None)
IMG = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}, {"etc/motd": b"welcome\n"}])


def read_all(layer) -> bytes:  # type: ignore[no-untyped-def]
    fh = layer.open()
    try:
        out = b""
        while chunk := fh.read(7):
            out += chunk
        return out
    finally:
        fh.close()


@pytest.fixture()
def forms(tmp_path: Path) -> dict[str, ArchiveRef]:
    write_oci_layout(tmp_path / "oci", IMG, tag="v1")
    write_tar_of_dir(tmp_path / "oci", tmp_path / "img.oci.tar")
    write_docker_archive(tmp_path / "img.docker.tar", IMG)
    return {
        "oci": ArchiveRef("oci", str(tmp_path / "oci"), "v1"),
        "oci-notag": ArchiveRef("oci", str(tmp_path / "oci")),
        "oci-archive": ArchiveRef("oci-archive", str(tmp_path / "img.oci.tar"), "v1"),
        "docker-archive": ArchiveRef("docker-archive", str(tmp_path / "img.docker.tar")),
    }


def test_all_local_forms_give_same_config_and_layer_contents(forms: dict[str, ArchiveRef]) -> None:
    for name, ref in forms.items():
        img = load_local(ref, PLAT)
        assert img.config_bytes == IMG.config, name
        assert img.config_digest == IMG.config_digest
        contents = [read_all(layer) for layer in img.layers]
        if name == "docker-archive":
            assert contents == IMG.diff_tars  # docker save stores uncompressed layers
            assert [layer.digest for layer in img.layers] == [sha(t) for t in IMG.diff_tars]
        else:
            assert img.manifest_digest == IMG.digest
            assert contents == [b for b, _ in IMG.layers]


def test_docker_archive_digest_is_the_canonical_manifest(forms: dict[str, ArchiveRef]) -> None:
    img = load_local(forms["docker-archive"], PLAT)
    expected = canonical_manifest(IMG.config, [(sha(t), len(t)) for t in IMG.diff_tars])
    assert img.manifest_digest == sha256_digest(expected)
    assert (
        json.loads(expected)["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    )
    # stable: the same archive always gives the same digest
    assert load_local(forms["docker-archive"], PLAT).manifest_digest == img.manifest_digest


def test_corrupt_local_blob_is_detected_while_reading(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "oci", IMG)
    blob = IMG.layers[0][0]
    path = tmp_path / "oci" / "blobs" / "sha256" / sha(blob)[7:]
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    img = load_local(ArchiveRef("oci", str(tmp_path / "oci")), PLAT)
    with pytest.raises(ImageError, match="hashes to"):
        read_all(img.layers[0])
    fh = img.layers[0].open()
    fh.read(3)
    with pytest.raises(ImageError, match="hashes to"):
        fh.close()  # close drains and verifies what was not read


def test_tag_selection_and_errors(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "oci", IMG, tag="v1")
    with pytest.raises(ImageError, match="has no image tagged 'v2'") as err:
        load_local(ArchiveRef("oci", str(tmp_path / "oci"), "v2"), PLAT)
    assert "tags in it: v1" in (err.value.hint or "")
    with pytest.raises(ImageError, match="does not exist"):
        load_local(ArchiveRef("oci", str(tmp_path / "nope")), PLAT)
    with pytest.raises(ImageError, match="not an OCI image layout"):
        load_local(ArchiveRef("oci", str(tmp_path)), PLAT)
    with pytest.raises(ImageError, match="is not a directory"):
        (tmp_path / "f").write_text("x")
        load_local(ArchiveRef("oci", str(tmp_path / "f")), PLAT)


def test_path_with_colon(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "dir:v9", IMG, tag=None)
    img = load_local(ArchiveRef("oci", str(tmp_path / "dir"), "v9"), PLAT)
    assert img.manifest_digest == IMG.digest


def test_oci_archive_is_read_in_place(forms: dict[str, ArchiveRef], tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "oci")  # nothing extracted anywhere
    img = load_local(forms["oci-archive"], PLAT)
    assert [read_all(layer) for layer in img.layers] == [b for b, _ in IMG.layers]


def test_compressed_docker_archive(tmp_path: Path) -> None:
    write_docker_archive(tmp_path / "img.tar", IMG)
    (tmp_path / "img.tar.gz").write_bytes(gzip.compress((tmp_path / "img.tar").read_bytes()))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ref = ArchiveRef("docker-archive", str(tmp_path / "img.tar.gz"))
    with pytest.raises(ImageError, match="is compressed"):
        load_local(ref, PLAT)
    img = load_local(ref, PLAT, scratch)
    assert img.config_digest == IMG.config_digest
    assert [read_all(layer) for layer in img.layers] == IMG.diff_tars
    img.close()
    assert list(scratch.iterdir()) == []


def test_wrong_kind_hints(forms: dict[str, ArchiveRef], tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is an OCI archive, not a docker archive"):
        load_local(ArchiveRef("docker-archive", forms["oci-archive"].path), PLAT)
    with pytest.raises(ImageError, match="not an OCI image layout"):
        load_local(ArchiveRef("oci-archive", forms["docker-archive"].path), PLAT)
