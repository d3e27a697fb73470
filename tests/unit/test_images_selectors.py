"""Local image selectors as skopeo has them, and compressed archives that fail to load.

``docker-archive:FILE:REPO:TAG`` / ``@N`` pick one image of a multi-image
archive; ``oci:DIR:TAG`` splits at the first ``:`` so a tag may hold ``:``; a
gzip/zstd archive that fails to load leaves nothing in scratch space and the
error names the user's archive, never the decompressed copy.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from hpcbridge.errors import ImageError, InputError
from hpcbridge.fsutil import undo_new_dirs
from hpcbridge.images.fetch.docker_archive import select_entry
from hpcbridge.images.fetch.local import load_local
from hpcbridge.images.refs import ArchiveRef, parse_ref
from tests.unit.images_support import SmallImage, make_image, write_oci_layout

PLAT = ("linux", "amd64", None)
ONE = make_image([{"one": b"1\n"}], cmd=["/one"])
TWO = make_image([{"two": b"2\n"}], cmd=["/two"])


def write_multi_archive(dest: Path, images: dict[str, SmallImage]) -> None:
    """A ``docker save a b`` archive: several images, one manifest.json entry each."""
    entries = []
    with tarfile.open(dest, "w") as tf:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        for n, (repo_tag, img) in enumerate(images.items()):
            names = []
            for i, t in enumerate(img.diff_tars):
                name = f"{n}{i:02d}{'0' * 61}/layer.tar"
                add(name, t)
                names.append(name)
            add(f"{img.config_digest[7:]}.json", img.config)
            entries.append(
                {"Config": f"{img.config_digest[7:]}.json", "RepoTags": [repo_tag], "Layers": names}
            )
        add("manifest.json", json.dumps(entries).encode())


@pytest.mark.parametrize(
    ("text", "path", "tag", "index"),
    [
        ("docker-archive:x.tar", "x.tar", None, None),
        ("docker-archive:x.tar:busybox:1.36", "x.tar", "docker.io/library/busybox:1.36", None),
        ("docker-archive:x.tar:busybox", "x.tar", "docker.io/library/busybox:latest", None),
        (
            "docker-archive:/d/x.tar:127.0.0.1:5000/hpcb/a:v1",
            "/d/x.tar",
            "127.0.0.1:5000/hpcb/a:v1",
            None,
        ),
        ("docker-archive:x.tar:@1", "x.tar", None, 1),
        ("oci:dir:v1", "dir", "v1", None),
        (
            "oci:dir:docker.io/library/busybox:latest",
            "dir",
            "docker.io/library/busybox:latest",
            None,
        ),
        ("oci:dir:1.0:rc1", "dir", "1.0:rc1", None),
        ("oci:dir:@0", "dir", None, 0),
        ("oci-archive:img.tar:v1:extra", "img.tar", "v1:extra", None),
    ],
)
def test_selectors_parse_as_skopeo(
    text: str, path: str, tag: str | None, index: int | None
) -> None:
    ref = parse_ref(text)
    assert ref == ArchiveRef(text.split(":", 1)[0], path, tag, index)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("oci:dir:", "nothing after the ':'"),
        ("docker-archive:x.tar:@x", "'@x' is not an image index"),
        ("docker-archive:x.tar:Busy:1", "'Busy'"),
        ("docker-archive:x.tar:busybox@sha256:" + "a" * 64, "not a digest"),
        ("oci:dir:bad tag", "'bad tag' is not a valid tag"),
    ],
)
def test_bad_selectors(text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        parse_ref(text)


def test_multi_image_docker_archive_is_selectable(tmp_path: Path) -> None:
    arch = tmp_path / "both.tar"
    write_multi_archive(arch, {"one:1": ONE, "127.0.0.1:5000/hpcb/two:v2": TWO})
    by_tag = load_local(parse_ref(f"docker-archive:{arch}:one:1"), PLAT)  # type: ignore[arg-type]
    assert by_tag.config_digest == ONE.config_digest
    other = load_local(parse_ref(f"docker-archive:{arch}:127.0.0.1:5000/hpcb/two:v2"), PLAT)  # type: ignore[arg-type]
    assert other.config_digest == TWO.config_digest
    assert load_local(ArchiveRef("docker-archive", str(arch), index=1), PLAT).config_digest == (
        TWO.config_digest
    )
    with pytest.raises(ImageError, match=r"holds 2 images \(tags: one:1, 127") as err:
        load_local(ArchiveRef("docker-archive", str(arch)), PLAT)
    assert err.value.hint and f"{arch}:@N" in err.value.hint
    with pytest.raises(ImageError, match=r"no image tagged docker\.io/library/three:1"):
        load_local(parse_ref(f"docker-archive:{arch}:three:1"), PLAT)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="there is no @2"):
        load_local(ArchiveRef("docker-archive", str(arch), index=2), PLAT)


def test_select_entry_is_pure() -> None:
    entries = [{"RepoTags": ["a:1"]}, {"RepoTags": ["b:2"]}]
    assert select_entry(entries, "x.tar", "docker.io/library/b:2", None) is entries[1]
    assert select_entry(entries, "x.tar", None, 0) is entries[0]


def test_oci_tag_with_colons_and_index(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "lay", ONE, tag="docker.io/library/one:1")
    got = load_local(parse_ref(f"oci:{tmp_path / 'lay'}:docker.io/library/one:1"), PLAT)  # type: ignore[arg-type]
    assert got.manifest_digest == ONE.digest
    assert load_local(parse_ref(f"oci:{tmp_path / 'lay'}:@0"), PLAT).manifest_digest == ONE.digest  # type: ignore[arg-type]


def test_a_path_holding_colons_is_found(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "a:b", ONE, tag="v1")
    ref = parse_ref(f"oci:{tmp_path / 'a'}:b:v1")  # skopeo's split gives path .../a, tag b:v1
    assert load_local(ref, PLAT).manifest_digest == ONE.digest  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
@pytest.mark.parametrize(
    ("content", "selector", "fragment"),
    [
        ("no-manifest", "", "is not a docker-archive (no manifest.json)"),
        ("two-images", "", "holds 2 images"),
        ("two-images", ":nope:1", "no image tagged"),
    ],
)
def test_failed_compressed_archive_leaves_nothing_and_names_the_archive(
    tmp_path: Path, compress: object, content: str, selector: str, fragment: str
) -> None:
    plain = tmp_path / "plain.tar"
    if content == "two-images":
        write_multi_archive(plain, {"one:1": ONE, "two:2": TWO})
    else:
        with tarfile.open(plain, "w") as tf:
            ti = tarfile.TarInfo("hello.txt")
            ti.size = 3
            tf.addfile(ti, io.BytesIO(b"hi\n"))
    archive = tmp_path / "user-archive.tar.z"
    archive.write_bytes(compress(plain.read_bytes()))  # type: ignore[operator]
    scratch = tmp_path / "cache" / "tmp"
    scratch.mkdir(parents=True)
    for _ in range(2):  # a retry leaves nothing either
        with pytest.raises(ImageError) as err:
            load_local(parse_ref(f"docker-archive:{archive}{selector}"), PLAT, scratch)  # type: ignore[arg-type]
        assert fragment in str(err.value)
        assert str(archive) in str(err.value) and ".part" not in str(err.value)
        assert list(scratch.iterdir()) == []


def test_undo_new_dirs_removes_only_what_it_created(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), undo_new_dirs(tmp_path / "a" / "b", tmp_path / "kept" / "c"):
        (tmp_path / "a" / "b" / "c").mkdir(parents=True)
        (tmp_path / "kept" / "c").mkdir()
        raise RuntimeError("refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []
    with undo_new_dirs(tmp_path / "x"):
        (tmp_path / "x").mkdir()
    assert (tmp_path / "x").is_dir()  # success: kept
