"""The testbed's Docker-free layer builder (tests/testbed/image_layers.py): deterministic
tar layers and diff layers with OCI whiteouts. Runs on plain temporary directories."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

from tests.testbed import image_layers as L


def _tree(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for rel, target in (links or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)
    return root


def _members(blobs: Path, digest: str) -> list[tarfile.TarInfo]:
    with (
        gzip.open(blobs / "sha256" / digest.split(":")[1]) as gz,
        tarfile.open(fileobj=gz, mode="r|") as tar,
    ):
        return list(tar)


def test_full_layer_is_deterministic(tmp_path: Path) -> None:
    files = {"etc/a": "1", "usr/bin/tool": "x" * 1000, "etc/z/deep": "d"}
    one = _tree(tmp_path / "one", files, {"bin": "usr/bin"})
    two = _tree(tmp_path / "two", dict(reversed(files.items())), {"bin": "usr/bin"})
    os.utime(two / "etc/a", (1, 1))
    a = L.write_layer(tmp_path / "blobs", L.full_layer(one), "x")
    b = L.write_layer(tmp_path / "blobs", L.full_layer(two), "x")
    assert a.digest == b.digest and a.diff_id == b.diff_id
    members = _members(tmp_path / "blobs", a.digest)
    names = [m.name for m in members]
    assert (
        names
        == sorted(names)
        == ["bin", "etc", "etc/a", "etc/z", "etc/z/deep", "usr", "usr/bin", "usr/bin/tool"]
    )
    assert {m.mtime for m in members} == {L.MTIME}
    assert {(m.uname, m.gname) for m in members} == {("", "")}
    assert (tmp_path / "blobs/sha256" / a.digest.split(":")[1]).stat().st_size == a.size


def test_diff_layer_whiteouts_topmost_removed_paths(tmp_path: Path) -> None:
    lower = _tree(
        tmp_path / "lower",
        {
            "keep": "k",
            "gone": "g",
            "dir/a": "a",
            "dir/sub/b": "b",
            "changed": "old",
            "deepdir/x/y": "y",
        },
    )
    upper = _tree(
        tmp_path / "upper", {"keep": "k", "changed": "new", "added/new": "n", "deepdir/x/y": "y"}
    )
    for rel in ("keep", "deepdir/x/y"):  # same content, same mtime: unchanged
        st = os.stat(lower / rel)
        os.utime(upper / rel, ns=(st.st_atime_ns, st.st_mtime_ns))
    for d in ("deepdir", "deepdir/x"):
        st = os.stat(lower / d)
        os.utime(upper / d, ns=(st.st_atime_ns, st.st_mtime_ns))
    blob = L.write_layer(tmp_path / "blobs", L.diff_layer(lower, upper), "diff")
    names = [m.name for m in _members(tmp_path / "blobs", blob.digest)]
    # 'dir' is removed as a whole: one whiteout, nothing for its content
    assert names == [".wh.dir", ".wh.gone", "added", "added/new", "changed"]


def test_diff_layer_ignores_same_content_with_new_mtime(tmp_path: Path) -> None:
    lower = _tree(tmp_path / "lower", {"f": "same"})
    upper = _tree(tmp_path / "upper", {"f": "same"})
    os.utime(upper / "f", (5, 5))
    st = os.stat(lower)
    os.utime(upper, ns=(st.st_atime_ns, st.st_mtime_ns))
    blob = L.write_layer(tmp_path / "blobs", L.diff_layer(lower, upper), "diff")
    assert _members(tmp_path / "blobs", blob.digest) == []
