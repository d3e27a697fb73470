"""Hostile layers: nothing outside the temporary rootfs is ever created, changed or removed.

Each test extracts next to a sentinel directory (and a sentinel file that plays
/etc/passwd) and compares a full snapshot of everything outside the rootfs
before and after.  The conversion either succeeds with the entry confined or
skipped, or fails with a clear ImageError.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from tests.unit.test_layers import Blob, apply_to, backend, d, entry, hard, layer, sym

__all__ = ["backend"]  # the disk/mem parametrisation applies here too

Snapshot = dict[str, tuple[str, int, int, bytes]]


def snapshot(base: Path, skip: Path) -> Snapshot:
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p == skip:
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[str(p)] = ("link", st.st_mode, st.st_nlink, os.readlink(p).encode())
            elif stat.S_ISDIR(st.st_mode):
                out[str(p)] = ("dir", st.st_mode, 0, b"")
            else:
                out[str(p)] = ("file", st.st_mode, st.st_nlink, p.read_bytes())
    return out


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(rootfs, sentinel dir); asserts afterwards that nothing outside rootfs changed."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("keep me")
    (sentinel / "passwd").write_text("root:x:0:0:host:/root:/bin/sh\n")
    (sentinel / "sub").mkdir()
    (sentinel / "sub" / "deep").write_text("deep")
    root = tmp_path / "rootfs"
    root.mkdir()
    before = snapshot(tmp_path, root)
    yield root, sentinel
    assert snapshot(tmp_path, root) == before, "something outside the rootfs changed"


def run(root: Path, *layers: Blob) -> None:
    apply_to(root, list(layers))


def test_dotdot_entries_are_confined(arena: tuple[Path, Path]) -> None:
    root, _sentinel = arena
    run(
        root,
        layer(
            entry("../sentinel/evil", b"x"),
            entry("a/../../../sentinel/keep", b"overwritten?"),
            d("../../up/"),
        ),
    )
    assert (root / "sentinel/evil").read_bytes() == b"x"
    assert (root / "sentinel/keep").read_bytes() == b"overwritten?"
    assert (root / "up").is_dir()


def test_absolute_paths_are_confined(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    run(root, layer(entry(str(sentinel / "abs"), b"x"), entry("/etc/hostile", b"y")))
    assert (root / str(sentinel / "abs").lstrip("/")).read_bytes() == b"x"
    assert (root / "etc/hostile").read_bytes() == b"y"


@pytest.mark.parametrize("target", ["../sentinel", "../../../../sentinel", "ABS"])
def test_file_written_through_an_escaping_symlink_stays_inside(
    arena: tuple[Path, Path], target: str
) -> None:
    root, sentinel = arena
    tgt = str(sentinel) if target == "ABS" else target
    run(
        root,
        layer(sym("escape", tgt)),
        layer(entry("escape/pwned", b"x"), entry("escape/keep", b"clobber")),
    )
    assert os.readlink(root / "escape") == tgt
    inner = root / (str(sentinel).lstrip("/") if target == "ABS" else "sentinel")
    assert (inner / "pwned").read_bytes() == b"x"
    assert (inner / "keep").read_bytes() == b"clobber"


def test_symlink_chain_and_loop(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    run(
        root,
        layer(sym("a", "b"), sym("b", "/../c"), sym("c", str(sentinel / "sub"))),
        layer(entry("a/deep", b"mine")),
    )
    assert (root / str(sentinel / "sub/deep").lstrip("/")).read_bytes() == b"mine"
    with pytest.raises(ImageError, match="too many levels of symbolic links"):
        run(root, layer(sym("loop1", "loop2"), sym("loop2", "loop1"), entry("loop1/x", b"x")))


def test_final_symlink_is_replaced_not_followed(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    run(
        root,
        layer(sym("link", str(sentinel / "keep")), sym("rel", "../sentinel/keep")),
        layer(entry("link", b"replaced"), entry("rel", b"replaced too"), d("link2/")),
    )
    assert not (root / "link").is_symlink()
    assert (root / "link").read_bytes() == b"replaced"
    assert (root / "rel").read_bytes() == b"replaced too"


def test_hardlink_to_host_passwd_fails_clearly_when_the_image_has_none(
    arena: tuple[Path, Path],
) -> None:
    root, sentinel = arena
    for target in ("/etc/passwd", "../../../../etc/passwd", str(sentinel / "passwd")):
        with pytest.raises(ImageError, match=r"hard link .* not a file in the image"):
            run(root, layer(hard("stolen", target)))
        assert not (root / "stolen").exists()


def test_hardlink_to_passwd_is_confined_to_the_images_own_file(arena: tuple[Path, Path]) -> None:
    root, _sentinel = arena
    run(
        root,
        layer(d("etc/"), entry("etc/passwd", b"image passwd\n")),
        layer(hard("stolen", "/etc/passwd")),
        layer(hard("stolen2", "../../etc/passwd")),
    )
    assert (root / "stolen").read_bytes() == b"image passwd\n"
    assert os.stat(root / "stolen").st_ino == os.stat(root / "etc/passwd").st_ino
    assert os.stat(root / "stolen2").st_ino == os.stat(root / "etc/passwd").st_ino


def test_hardlink_through_escaping_symlink_targets_inside(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    with pytest.raises(ImageError, match="hard link"):
        run(root, layer(sym("esc", str(sentinel))), layer(hard("h", "esc/passwd")))
    # a hardlink to a symlink links the symlink itself, never what it points to
    run(root, layer(sym("s", str(sentinel / "passwd")), hard("h2", "s")))
    assert os.readlink(root / "h2") == str(sentinel / "passwd")


def test_whiteouts_cannot_climb_out(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    run(
        root,
        layer(sym("esc", str(sentinel)), sym("rel", "../sentinel")),
        layer(
            entry("../sentinel/.wh.keep"),
            entry("/" + str(sentinel).lstrip("/") + "/.wh.keep"),
            entry("esc/.wh.keep"),
            entry("rel/.wh.sub"),
            entry("esc/.wh..wh..opq"),
            entry("../.wh.sentinel"),
            entry(".wh.."),
            entry("esc/../../.wh..wh..opq"),
        ),
    )
    # the host files still exist (checked by the fixture); the climbing opaque marker
    # cleared the rootfs's own top level, nothing else
    assert os.listdir(root) == []


def test_opaque_root_only_clears_the_rootfs(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    run(
        root,
        layer(entry("old", b"o"), sym("esc", "/")),
        layer(entry(".wh..wh..opq"), entry("new", b"n")),
    )
    assert sorted(os.listdir(root)) == ["new"]


def test_devices_fifos_are_skipped_and_setuid_dropped(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    dev = entry("dev/sda", None, kind=tarfile.BLKTYPE, mode=0o660)
    chrdev = entry("evil-null", None, kind=tarfile.CHRTYPE, mode=0o666)
    run(
        root,
        layer(
            d("dev/"),
            dev,
            chrdev,
            entry("fifo", None, kind=tarfile.FIFOTYPE),
            entry("bin/su", b"\x7fELF", mode=0o4755),
            entry("bin/wall", b"x", mode=0o2755),
            d("sticky/", 0o1777),
            d("setgid-dir/", 0o2775),
        ),
    )
    assert sorted(os.listdir(root / "dev")) == []
    assert not (root / "evil-null").exists() and not (root / "fifo").exists()
    for p in ("bin/su", "bin/wall", "sticky", "setgid-dir"):
        mode = os.stat(root / p).st_mode
        assert mode & (stat.S_ISUID | stat.S_ISGID) == 0, p
    assert stat.S_IMODE(os.stat(root / "bin/su").st_mode) == 0o755


def test_parent_replaced_by_symlink_between_layers(arena: tuple[Path, Path]) -> None:
    """A directory turned into an escaping symlink by a later layer is resolved inside."""
    root, sentinel = arena
    run(
        root,
        layer(d("data/"), entry("data/a", b"a")),
        layer(sym("data", str(sentinel))),
        layer(entry("data/b", b"b")),
    )
    assert (root / str(sentinel).lstrip("/") / "b").read_bytes() == b"b"
