"""convert() end to end on a tiny image: a real HTTP registry on 127.0.0.1, real mksquashfs.

Counts the registry requests of the warm path, checks that every source form
gives the same SIF bytes, that failures leave nothing behind, and the cache
records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.convert import convert
from tests.unit.images_support import (
    Behaviour,
    Registry,
    make_image,
    write_docker_archive,
    write_oci_layout,
    write_tar_of_dir,
)

pytestmark = pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="needs mksquashfs")

IMG = make_image(
    [{"bin/hello": b"#!/bin/sh\necho hi\n", "etc/motd": b"one\n"}, {"etc/motd": b"two\n"}],
    env=["PATH=/bin", "GREETING=hello world"],
    labels={"org.example.name": "tiny"},
)


def leftovers(cache: Path) -> list[str]:
    out = []
    for p in cache.rglob("*"):
        if p.name.endswith(".part") or p.name.endswith(".lock") or p.name.endswith(".break"):
            out.append(str(p.relative_to(cache)))
    tmp = cache / "tmp"
    if tmp.is_dir():
        out += [f"tmp/{n}" for n in os.listdir(tmp)]
    return out


def test_cold_then_warm_by_tag_uses_one_head(tmp_path: Path) -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        stages: list[str] = []
        cold = convert(ref, cache_dir=tmp_path, progress=lambda s, d, t: stages.append(s))
        assert not cold.cached and cold.digest == IMG.digest
        assert cold.path == tmp_path / "sif" / f"{IMG.digest[7:]}.sif"
        assert hashlib.sha256(cold.path.read_bytes()).hexdigest() == cold.sif_sha256
        assert cold.path.read_bytes()[32:41] == b"SIF_MAGIC"
        assert os.stat(cold.path).st_mode & 0o777 == 0o755
        assert {"download", "extract", "squash"} <= set(stages)
        record = json.loads((tmp_path / "sif" / f"{IMG.digest[7:]}.json").read_text())
        assert record["digest"] == IMG.digest and record["sif_sha256"] == cold.sif_sha256
        assert record["source_ref"] == ref and record["backend"] == "native"
        assert leftovers(tmp_path) == []
        blobs = sorted(p.name for p in (tmp_path / "blobs" / "sha256").iterdir())
        assert blobs == sorted(d[7:] for d in IMG.blobs())

        reg.log.clear()
        warm = convert(ref, cache_dir=tmp_path)
        assert warm.cached and warm.path == cold.path and warm.sif_sha256 == cold.sif_sha256
        assert [(m, p) for m, p, _ in reg.log] == [("HEAD", "/v2/tiny/manifests/v1")]

        reg.log.clear()
        pinned = convert(f"docker://{reg.host}/tiny@{IMG.digest}", cache_dir=tmp_path)
        assert pinned.cached and pinned.path == cold.path
        assert reg.log == []  # a digest reference needs no request at all

        offline = convert(ref, cache_dir=tmp_path, offline=True)
        assert offline.cached and offline.path == cold.path and reg.log == []


def test_offline_without_resolution_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is not in the cache") as err:
        convert("docker://127.0.0.1:9/tiny:v1", cache_dir=tmp_path, offline=True)
    assert "without --offline" in (err.value.hint or "")


def test_new_tag_target_is_noticed(tmp_path: Path) -> None:
    other = make_image([{"etc/motd": b"new\n"}])
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        first = convert(ref, cache_dir=tmp_path)
        reg.push("tiny", "v1", other)  # the tag moves
        second = convert(ref, cache_dir=tmp_path)
        assert second.digest == other.digest and not second.cached
        assert second.path != first.path and first.path.exists()


def test_every_source_form_gives_the_same_sif(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "oci", IMG, tag="v1")
    write_tar_of_dir(tmp_path / "oci", tmp_path / "img.oci.tar")
    write_docker_archive(tmp_path / "img.docker.tar", IMG)
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        refs = [
            f"docker://{reg.host}/tiny:v1",
            f"docker-archive:{tmp_path / 'img.docker.tar'}",
            f"oci:{tmp_path / 'oci'}:v1",
            f"oci-archive:{tmp_path / 'img.oci.tar'}",
        ]
        results = [convert(r, cache_dir=tmp_path / f"cache{i}") for i, r in enumerate(refs)]
    shas = {r.sif_sha256 for r in results}
    assert len(shas) == 1, [(r.ref, r.sif_sha256) for r in results]
    assert {r.digest for r in results if not r.ref.startswith("docker-archive")} == {IMG.digest}


def test_platform_from_index_and_warm_index_path(tmp_path: Path) -> None:
    amd = make_image([{"etc/arch": b"amd64\n"}], arch="amd64")
    arm = make_image([{"etc/arch": b"arm64\n"}], arch="arm64")
    with Registry() as reg:
        reg.push_index("multi", "v1", {"linux/amd64": amd, "linux/arm64": arm})
        ref = f"docker://{reg.host}/multi:v1"
        got = convert(ref, cache_dir=tmp_path)
        assert got.digest == amd.digest
        reg.log.clear()
        again = convert(ref, cache_dir=tmp_path)
        assert again.cached and [m for m, _, _ in reg.log] == [
            "HEAD"
        ]  # index digest -> known manifest
        with pytest.raises(ImageError, match="no image for platform linux/ppc64le"):
            convert(ref, cache_dir=tmp_path, platform="linux/ppc64le")


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    with Registry(Behaviour(corrupt_blobs=True)) as reg:
        reg.push("tiny", "v1", IMG)
        with pytest.raises(ImageError, match="hashes to"):
            convert(f"docker://{reg.host}/tiny:v1", cache_dir=tmp_path)
    assert leftovers(tmp_path) == []
    assert list((tmp_path / "sif").iterdir()) == []
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []


def test_force_output_and_pass_through(tmp_path: Path) -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        first = convert(ref, cache_dir=tmp_path / "c")
        forced = convert(ref, cache_dir=tmp_path / "c", force=True, output=tmp_path / "out.sif")
        assert not forced.cached and forced.sif_sha256 == first.sif_sha256  # deterministic
        assert forced.output == tmp_path / "out.sif"
        assert (tmp_path / "out.sif").read_bytes() == first.path.read_bytes()
    passed = convert(str(tmp_path / "out.sif"), cache_dir=tmp_path / "c")
    assert passed.cached and passed.digest == "sha256:" + first.sif_sha256
    (tmp_path / "not.sif").write_text("hello")
    with pytest.raises(InputError, match="is not a SIF file"):
        convert(str(tmp_path / "not.sif"), cache_dir=tmp_path / "c")


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown convert backend 'docker'"):
        convert("busybox", cache_dir=tmp_path, backend="docker")
    with pytest.raises(InputError, match="unknown squashfs compression 'brotli'"):
        convert("busybox", cache_dir=tmp_path, compression="brotli")
    with pytest.raises(InputError, match="level 3 given for xz, which takes no level"):
        convert("busybox", cache_dir=tmp_path, compression="xz", level=3)
    with pytest.raises(InputError, match="out of range for zstd"):
        convert("busybox", cache_dir=tmp_path, compression="zstd", level=23)
    with pytest.raises(InputError, match="invalid platform"):
        convert("busybox", cache_dir=tmp_path, platform="amd64")


def test_single_platform_image_must_match_platform(tmp_path: Path) -> None:
    arm = make_image([{"etc/arch": b"arm64\n"}], arch="arm64")
    with Registry() as reg:
        reg.push("arm", "v1", arm)
        ref = f"docker://{reg.host}/arm:v1"
        with pytest.raises(ImageError, match="is a linux/arm64 image, not linux/amd64") as err:
            convert(ref, cache_dir=tmp_path)
        assert "--platform linux/arm64" in (err.value.hint or "")
        assert leftovers(tmp_path) == []
        # refused from the config alone: no layer was downloaded
        blobs = tmp_path / "blobs" / "sha256"
        assert len(list(blobs.iterdir()) if blobs.is_dir() else []) <= 1
        assert convert(ref, cache_dir=tmp_path, platform="linux/arm64").digest == arm.digest


def test_unreachable_registry_falls_back_to_cached_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcbridge.images.fetch.transport import Transport

    monkeypatch.setitem(Transport.__init__.__kwdefaults__, "retries", 0)
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        first = convert(ref, cache_dir=tmp_path)
    # the registry is gone now (connection refused)
    again = convert(ref, cache_dir=tmp_path)
    assert again.cached and again.path == first.path
    with pytest.raises(ImageError, match="cannot reach"):
        convert(ref.replace("tiny", "other"), cache_dir=tmp_path)


def test_result_carries_workdir_and_labels_also_when_cached(tmp_path: Path) -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        cold = convert(ref, cache_dir=tmp_path)
        warm = convert(ref, cache_dir=tmp_path, output=tmp_path / "copy.sif")
    for res in (cold, warm):
        assert res.workdir == "/work"
        assert res.labels == {"org.example.name": "tiny"}
    assert warm.output == tmp_path / "copy.sif" and warm.to_dict()["workdir"] == "/work"
