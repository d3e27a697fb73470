"""The two places a flattened image tree can live while it is built.

:class:`DiskFS` is a real directory (the rootfs handed to ``mksquashfs DIR``);
:class:`MemFS` is an in-memory model of the same tree whose regular files only
remember *where* their data is (layer index, member ordinal, size), so the tree
can later be streamed to ``mksquashfs -tar`` without ever being written to disk.
Both take paths relative to the root whose every parent component has already
been resolved by :class:`~hpcbridge.images.layers.apply.RootfsWriter`: they never
follow a symlink themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional, Union

from hpcbridge.errors import ImageError

_CHUNK = 1 << 20
DIR, FILE, LINK, OTHER = "d", "f", "l", "o"
#: ``Node.data`` of a file from a layer: ``layer * MEMBER_SPAN + member ordinal``.
MEMBER_SPAN = 1 << 32


@dataclass(frozen=True)
class Stat:
    kind: str
    mode: int
    ident: object  # same value <=> same inode (hard links)


def members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of a stream-mode (``r|``) archive in order, forgotten once passed.

    Iterating a TarFile appends every member to ``tf.members``: a layer of
    500,000 files would hold 500,000 TarInfo objects (~0.5 GB) to the end.
    """
    while True:
        ti = tf.next()
        if ti is None:
            return
        tf.members.clear()  # type: ignore[attr-defined]
        yield ti


class DiskFS:
    """A real directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def _abs(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

    def stat(self, rel: str) -> Optional[Stat]:
        try:
            st = os.lstat(self._abs(rel))
        except FileNotFoundError:
            return None
        m = st.st_mode
        kind = (
            DIR
            if stat.S_ISDIR(m)
            else LINK
            if stat.S_ISLNK(m)
            else FILE
            if stat.S_ISREG(m)
            else OTHER
        )
        return Stat(kind, stat.S_IMODE(m), (st.st_dev, st.st_ino))

    def readlink(self, rel: str) -> str:
        return os.readlink(self._abs(rel))

    def mkdir(self, rel: str, mode: int, mtime: int) -> None:
        os.mkdir(self._abs(rel), 0o700)
        if mode != 0o700:
            os.chmod(self._abs(rel), mode)

    def chmod(self, rel: str, mode: int) -> None:
        os.chmod(self._abs(rel), mode)

    def remove(self, rel: str, kind: str) -> None:
        if kind == DIR:
            shutil.rmtree(self._abs(rel))
        else:
            os.unlink(self._abs(rel))

    def listdir(self, rel: str) -> list[str]:
        return os.listdir(self._abs(rel))

    def symlink(self, target: str, rel: str, mtime: int) -> None:
        path = self._abs(rel)
        os.symlink(target, path)
        ns = max(mtime, 0) * 1_000_000_000
        with contextlib.suppress(OSError):  # filesystems without symlink times
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def link(self, src_rel: str, dst_rel: str) -> None:
        os.link(self._abs(src_rel), self._abs(dst_rel), follow_symlinks=False)

    def write_member(
        self,
        rel: str,
        mode: int,
        ti: tarfile.TarInfo,
        tf: Optional[tarfile.TarFile],
        where: tuple[int, int],
        layer: str,
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._abs(rel), flags, 0o600)
        try:
            if ti.size:
                assert tf is not None  # a directory needs the data
                src = tf.extractfile(ti)
                assert src is not None
                remaining = ti.size
                while remaining > 0:
                    chunk = src.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise ImageError(
                            f"layer {layer}: file {ti.name!r} is truncated",
                            "the layer blob is corrupt; delete it from the cache and fetch again",
                        )
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    remaining -= len(chunk)
            os.fchmod(fd, mode)
            ns = max(int(ti.mtime), 0) * 1_000_000_000
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def write_bytes(self, rel: str, mode: int, data: bytes, mtime: int) -> None:
        fd = os.open(
            self._abs(rel),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


class Node:
    """One inode of a :class:`MemFS` (several names may share it: hard links)."""

    __slots__ = ("children", "data", "kind", "mode", "mtime", "size", "target")

    def __init__(self, kind: str, mode: int, mtime: int) -> None:
        self.kind = kind
        self.mode = mode
        self.mtime = mtime
        self.children: Optional[dict[str, Node]] = {} if kind == DIR else None
        self.target = ""
        self.size = 0
        # the layer member holding the data (layer * MEMBER_SPAN + ordinal: an int is
        # smaller than a tuple, times millions of files), or the data itself
        self.data: Union[int, bytes, None] = None


class MemFS:
    """An in-memory tree; regular files point at their tar member instead of holding data."""

    def __init__(self, root_mtime: int = 0) -> None:
        self.root = Node(DIR, 0o755, root_mtime)

    def _parent(self, rel: str) -> tuple[Node, str]:
        node = self.root
        *dirs, name = rel.split("/")
        for comp in dirs:
            assert node.children is not None
            node = node.children[comp]
        assert node.children is not None
        return node, name

    def _get(self, rel: str) -> Optional[Node]:
        if not rel:
            return self.root
        parent, name = self._parent(rel)
        assert parent.children is not None
        return parent.children.get(name)

    def stat(self, rel: str) -> Optional[Stat]:
        node = self._get(rel)
        return None if node is None else Stat(node.kind, node.mode, id(node))

    def readlink(self, rel: str) -> str:
        node = self._get(rel)
        assert node is not None
        return node.target

    def _put(self, rel: str, node: Node) -> None:
        parent, name = self._parent(rel)
        assert parent.children is not None
        parent.children[name] = node

    def mkdir(self, rel: str, mode: int, mtime: int) -> None:
        self._put(rel, Node(DIR, mode, mtime))

    def chmod(self, rel: str, mode: int) -> None:
        node = self._get(rel)
        assert node is not None
        node.mode = mode

    def remove(self, rel: str, kind: str) -> None:
        parent, name = self._parent(rel)
        assert parent.children is not None
        del parent.children[name]

    def listdir(self, rel: str) -> list[str]:
        node = self._get(rel)
        assert node is not None and node.children is not None
        return list(node.children)

    def symlink(self, target: str, rel: str, mtime: int) -> None:
        node = Node(LINK, 0o777, mtime)
        node.target = target
        self._put(rel, node)

    def link(self, src_rel: str, dst_rel: str) -> None:
        node = self._get(src_rel)
        assert node is not None
        self._put(dst_rel, node)

    def write_member(
        self,
        rel: str,
        mode: int,
        ti: tarfile.TarInfo,
        tf: Optional[tarfile.TarFile],
        where: tuple[int, int],
        layer: str,
    ) -> None:
        node = Node(FILE, mode, max(int(ti.mtime), 0))
        node.size = ti.size
        node.data = where[0] * MEMBER_SPAN + where[1]
        self._put(rel, node)

    def write_bytes(self, rel: str, mode: int, data: bytes, mtime: int) -> None:
        node = Node(FILE, mode, mtime)
        node.size = len(data)
        node.data = data
        self._put(rel, node)
