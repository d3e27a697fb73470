"""Applying OCI layers to a rootfs: compression, whiteouts, links, duplicates, modes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import zstandard

from hpcbridge.errors import ImageError
from hpcbridge.images.layers.apply import apply_layers, clean_parts
from hpcbridge.images.layers.tar import plan_stream, write_stream
from hpcbridge.images.layers.tree import MemFS

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
ZST = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass
class Blob:
    """An in-memory layer satisfying the Layer protocol."""

    data: bytes
    media_type: str = TAR

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)


def entry(
    name: str,
    data: Optional[bytes] = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    mode: int = 0o644,
    link: str = "",
    mtime: int = 1_600_000_000,
) -> tuple[tarfile.TarInfo, Optional[bytes]]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.linkname = link
    ti.mtime = mtime
    ti.uid = ti.gid = 1234
    if kind == tarfile.REGTYPE:
        ti.size = len(data or b"")
        return ti, data
    return ti, None


def d(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, Optional[bytes]]:
    return entry(name, None, kind=tarfile.DIRTYPE, mode=mode)


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, Optional[bytes]]:
    return entry(name, None, kind=tarfile.SYMTYPE, link=target, mode=0o777)


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, Optional[bytes]]:
    return entry(name, None, kind=tarfile.LNKTYPE, link=target)


def make_tar(
    *entries: tuple[tarfile.TarInfo, Optional[bytes]], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def layer(*entries: tuple[tarfile.TarInfo, Optional[bytes]], comp: str = "none") -> Blob:
    raw = make_tar(*entries)
    if comp == "gzip":
        return Blob(gzip.compress(raw, mtime=0), GZ)
    if comp == "zstd":
        return Blob(zstandard.ZstdCompressor().compress(raw), ZST)
    return Blob(raw, TAR)


BACKEND = {"name": "disk"}


@pytest.fixture(params=["disk", "mem"], autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs against the on-disk rootfs and the in-memory tree + tar stream."""
    BACKEND["name"] = request.param
    yield request.param
    BACKEND["name"] = "disk"


def materialize(tree: MemFS, layers: list[Blob], root: Path) -> None:
    """Extract the tar stream that would go to ``mksquashfs -tar`` into ``root``."""
    buf = io.BytesIO()
    write_stream(buf, plan_stream(tree), layers, dir_mtime=0)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        for ti in tf:
            assert not ti.name.startswith("/") and ".." not in ti.name.split("/")
            p = root / ti.name
            if ti.isdir():
                p.mkdir()
                os.chmod(p, ti.mode)
            elif ti.issym():
                os.symlink(ti.linkname, p)
            elif ti.islnk():
                os.link(root / ti.linkname, p)
            else:
                src = tf.extractfile(ti)
                assert src is not None
                p.write_bytes(src.read())
                os.chmod(p, ti.mode)
                os.utime(p, (ti.mtime, ti.mtime))


def apply_to(root: Path, layers: list[Blob]) -> None:
    if BACKEND["name"] == "disk":
        apply_layers(layers, str(root))
    else:
        tree = MemFS()
        apply_layers(layers, tree)
        materialize(tree, layers, root)


def apply(tmp_path: Path, *layers: Blob) -> Path:
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)
    apply_to(root, list(layers))
    return root


def tree(root: Path) -> dict[str, str]:
    """path -> 'dir' | 'file:<content>' | 'link:<target>' for everything under root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + p.read_bytes().decode(errors="replace")
    return out


@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_each_compression_is_applied(tmp_path: Path, comp: str) -> None:
    big = os.urandom(3 << 20)  # spans several decompression chunks
    root = apply(
        tmp_path, layer(d("usr/"), entry("usr/big", big), entry("a.txt", b"hello"), comp=comp)
    )
    assert (root / "a.txt").read_bytes() == b"hello"
    assert (root / "usr/big").read_bytes() == big


def test_compression_is_detected_from_magic_bytes_not_only_the_media_type(tmp_path: Path) -> None:
    plain = make_tar(entry("x", b"1"))
    gz = gzip.compress(make_tar(entry("y", b"2")), mtime=0)
    root = apply(tmp_path, Blob(plain, GZ), Blob(gz, TAR), Blob(gz, ""))
    assert (root / "x").read_bytes() == b"1"
    assert (root / "y").read_bytes() == b"2"


def test_multi_member_gzip(tmp_path: Path) -> None:
    raw = make_tar(entry("f", b"x" * 5000), entry("g", b"y"))
    half = len(raw) // 2
    blob = gzip.compress(raw[:half], mtime=0) + gzip.compress(raw[half:], mtime=0)
    root = apply(tmp_path, Blob(blob, GZ))
    assert (root / "f").read_bytes() == b"x" * 5000
    assert (root / "g").read_bytes() == b"y"


def test_whiteout_removes_lower_file_and_directory(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(
            d("etc/"),
            entry("etc/a", b"a"),
            entry("etc/b", b"b"),
            d("opt/sub/"),
            entry("opt/sub/x", b"x"),
        ),
        layer(entry("etc/.wh.a"), entry("opt/.wh.sub"), entry("etc/.wh.missing")),
    )
    assert tree(root) == {"etc": "dir", "etc/b": "file:b", "opt": "dir"}


def test_opaque_directory_hides_lower_content_but_keeps_this_layers_entries(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(
            d("app/"),
            entry("app/old", b"old"),
            d("app/sub/"),
            entry("app/sub/lower", b"l"),
            entry("keep", b"k"),
        ),
        # entries of the same layer listed before AND after the opaque marker survive
        layer(
            d("app/"),
            entry("app/-early", b"e"),
            d("app/sub/"),
            entry("app/sub/new", b"n"),
            entry("app/.wh..wh..opq"),
            entry("app/late", b"z"),
        ),
    )
    assert tree(root) == {
        "app": "dir",
        "app/-early": "file:e",
        "app/sub": "dir",
        "app/sub/new": "file:n",
        "app/late": "file:z",
        "keep": "file:k",
    }
    assert not (root / ".wh..wh..opq").exists()


def test_hardlinks_within_and_across_layers(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(d("bin/"), entry("bin/tool", b"#!tool", mode=0o755)),
        layer(
            hard("bin/alias", "bin/tool"),
            hard("bin/alias2", "./bin/alias"),
            entry("bin/solo", b"s"),
        ),
    )
    st = [os.stat(root / n) for n in ("bin/tool", "bin/alias", "bin/alias2")]
    assert len({(s.st_ino, s.st_dev) for s in st}) == 1
    assert st[0].st_nlink == 3


def test_symlinks_and_writes_through_in_root_symlinked_directories(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(
            d("usr/lib/"),
            sym("lib", "usr/lib"),
            sym("abs", "/usr/lib"),
            sym("dangling", "/nowhere"),
        ),
        layer(entry("lib/libx.so", b"x"), entry("abs/liby.so", b"y")),
    )
    assert os.readlink(root / "lib") == "usr/lib"
    assert os.readlink(root / "dangling") == "/nowhere"
    assert (root / "usr/lib/libx.so").read_bytes() == b"x"
    assert (root / "usr/lib/liby.so").read_bytes() == b"y"


def test_pax_long_names_and_non_ascii(tmp_path: Path) -> None:
    long_dir = "/".join(["d" * 60] * 5)
    name = f"{long_dir}/{'f' * 200}.txt"
    root = apply(
        tmp_path, layer(entry(name, b"deep"), entry("Grüße ✓.txt", b"u"), sym("l" * 150, "t" * 300))
    )
    assert (root / name).read_bytes() == b"deep"
    assert (root / "Grüße ✓.txt").read_bytes() == b"u"
    assert os.readlink(root / ("l" * 150)) == "t" * 300


def test_duplicates_last_wins_and_dir_file_replacement(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(
            entry("f", b"one"),
            entry("f", b"two"),
            d("was_dir/"),
            entry("was_dir/child", b"c"),
            entry("was_file", b"x"),
            sym("was_link", "f"),
        ),
        layer(
            entry("was_dir", b"now a file"),
            d("was_file/"),
            entry("was_file/inner", b"i"),
            entry("was_link", b"plain"),
        ),
    )
    assert (root / "f").read_bytes() == b"two"
    assert (root / "was_dir").read_bytes() == b"now a file"
    assert (root / "was_file/inner").read_bytes() == b"i"
    assert not (root / "was_link").is_symlink()
    assert (root / "was_link").read_bytes() == b"plain"
    assert (root / "f").read_bytes() == b"two"  # writing was_link did not write through it


def test_rewriting_a_hardlinked_file_does_not_change_its_other_name(tmp_path: Path) -> None:
    root = apply(tmp_path, layer(entry("a", b"orig"), hard("b", "a")), layer(entry("b", b"new")))
    assert (root / "a").read_bytes() == b"orig"
    assert (root / "b").read_bytes() == b"new"


def test_modes_are_made_readable_and_setuid_setgid_dropped(tmp_path: Path) -> None:
    root = apply(
        tmp_path,
        layer(
            d("ro/", 0o555),
            entry("ro/secret", b"s", mode=0o000),
            entry("suid", b"x", mode=0o4755),
            entry("sgid", b"x", mode=0o2711),
            d("tmp/", 0o1777),
        ),
    )
    assert stat.S_IMODE(os.stat(root / "ro").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "ro/secret").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(root / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "sgid").st_mode) == 0o711
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777  # sticky kept, as apptainer does


def test_file_mtimes_are_kept(tmp_path: Path) -> None:
    root = apply(tmp_path, layer(entry("m.py", b"x", mtime=1_234_567_890), sym("s", "m.py")))
    assert os.stat(root / "m.py").st_mtime == 1_234_567_890


def test_devices_and_fifos_are_skipped(tmp_path: Path) -> None:
    dev = entry("dev/null", None, kind=tarfile.CHRTYPE, mode=0o666)
    dev[0].devmajor, dev[0].devminor = 1, 3
    root = apply(tmp_path, layer(d("dev/"), dev, entry("dev/fifo", None, kind=tarfile.FIFOTYPE)))
    assert tree(root) == {"dev": "dir"}


def test_clean_parts_clamps_at_the_root() -> None:
    assert clean_parts("./a/b/../c") == (["a", "c"], False)
    assert clean_parts("/etc/passwd") == (["etc", "passwd"], True)
    assert clean_parts("../../x") == (["x"], True)
    assert clean_parts("a/../../x") == (["x"], True)


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (Blob(b"this is not a tar archive at all" * 40, TAR), "not a valid tar"),
        (
            Blob(gzip.compress(make_tar(entry("a", os.urandom(50000))), mtime=0)[:30000], GZ),
            "truncated",
        ),
        (Blob(b"BZh91AY&SY" + b"\0" * 600, TAR), "bzip2"),
        (Blob(make_tar(entry("a")), "application/vnd.oci.image.config.v1+json"), "not a tar layer"),
        (Blob(make_tar(hard("b", "missing")), TAR), "hard link"),
    ],
)
def test_bad_layers_raise_a_clear_image_error(tmp_path: Path, blob: Blob, words: str) -> None:
    with pytest.raises(ImageError) as exc:
        apply(tmp_path, blob)
    assert words in str(exc.value)
    assert blob.digest in str(exc.value)


def test_corrupt_zstd_raises_image_error(tmp_path: Path) -> None:
    data = bytearray(zstandard.ZstdCompressor().compress(make_tar(entry("a", os.urandom(100000)))))
    data[40:60] = b"\xff" * 20
    with pytest.raises(ImageError):
        apply(tmp_path, Blob(bytes(data), ZST))
