"""Stream a flattened :class:`~hpcbridge.images.layers.tree.MemFS` tree as one tar archive.

The first pass (``apply_layers`` into a MemFS) decides, entry by entry, what the
final tree is and which tar member of which layer holds each surviving file's
data.  This second pass writes that tree to ``mksquashfs -tar``'s stdin: all
directories, symlinks and scaffold files first, then the layers are read again
in order and only the surviving members' data is copied; hard-linked names
follow their data at once.  Layers with no surviving member are not read at
all, and a layer's reading stops after its last surviving member.  Nothing is
written to disk but the squashfs itself.

Headers are GNU-format: squashfs-tools 4.5.1 strips the leading ``/`` of a PAX
``linkpath`` (long absolute symlink targets), but handles GNU long names and
links correctly.
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Callable, Optional, Union

from hpcbridge.errors import ImageError
from hpcbridge.images.layers.decompress import open_decompressed
from hpcbridge.images.layers.tree import DIR, FILE, LINK, MEMBER_SPAN, MemFS, Node, members
from hpcbridge.images.protocols import BinaryReader

_CHUNK = 1 << 20
_TAR_BUF = 64 << 10
_BLOCK = 512


@dataclass
class StreamPlan:
    dirs: list[tuple[str, int]] = field(default_factory=list)
    symlinks: list[tuple[str, str, int]] = field(default_factory=list)
    inline: list[tuple[Node, list[str]]] = field(default_factory=list)
    members: dict[int, dict[int, tuple[Node, list[str]]]] = field(default_factory=dict)

    def data_bytes(self, layer: Optional[int] = None) -> int:
        """Bytes of file data the stream carries (of one layer's members, or all)."""
        if layer is not None:
            return sum(node.size for node, _ in self.members.get(layer, {}).values())
        inline = sum(node.size for node, _ in self.inline)
        return inline + sum(self.data_bytes(li) for li in self.members)


def plan_stream(fs: MemFS) -> StreamPlan:
    """Walk the final tree (sorted, parents first) and group the names of each file inode."""
    plan = StreamPlan()
    inline: dict[int, list[str]] = {}  # id(node) -> its names (scaffold files)

    def walk(node: Node, prefix: str) -> None:
        assert node.children is not None
        for name in sorted(node.children):
            child = node.children[name]
            path = f"{prefix}{name}"
            if child.kind == DIR:
                plan.dirs.append((path, child.mode))
                walk(child, path + "/")
            elif child.kind == LINK:
                plan.symlinks.append((path, child.target, child.mtime))
            elif child.kind == FILE and isinstance(child.data, bytes):
                if id(child) not in inline:
                    inline[id(child)] = []
                    plan.inline.append((child, inline[id(child)]))
                inline[id(child)].append(path)
            elif child.kind == FILE and isinstance(child.data, int):
                # one (layer, member) per inode: a second name of it is a hard link
                li, mi = divmod(child.data, MEMBER_SPAN)
                entry = plan.members.setdefault(li, {}).setdefault(mi, (child, []))
                entry[1].append(path)

    walk(fs.root, "")
    return plan


def _header(
    name: str,
    kind: bytes,
    mode: int,
    mtime: int,
    size: int = 0,
    linkname: str = "",
) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = mtime
    ti.size = size
    ti.linkname = linkname
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


class _Out:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0

    def write(self, data: Union[bytes, memoryview]) -> None:
        self.out.write(data)
        self.written += len(data)

    def pad(self) -> None:
        rest = self.written % _BLOCK
        if rest:
            self.write(bytes(_BLOCK - rest))


def _emit_file(
    o: _Out, node: Node, paths: list[str], data: Optional[bytes], src: Optional[IO[bytes]]
) -> None:
    o.write(_header(paths[0], tarfile.REGTYPE, node.mode, node.mtime, node.size))
    if data is not None:
        o.write(data)
    elif src is not None:
        remaining = node.size
        while remaining > 0:
            chunk = src.read(min(_CHUNK, remaining))
            if not chunk:
                raise ImageError(
                    f"file /{paths[0]} is truncated in its layer", "the layer blob is corrupt"
                )
            o.write(chunk)
            remaining -= len(chunk)
    o.pad()
    for other in paths[1:]:
        o.write(_header(other, tarfile.LNKTYPE, node.mode, node.mtime, linkname=paths[0]))


def write_stream(
    out: IO[bytes],
    plan: StreamPlan,
    layers: Sequence[object],
    *,
    dir_mtime: int,
    open_stream: Optional[Callable[[int], BinaryReader]] = None,
    on_data: Optional[Callable[[int, int], None]] = None,
) -> None:
    """Write the whole tree as a tar stream to ``out`` (mksquashfs's stdin).

    ``open_stream(i)``, if given, returns layer ``i``'s decompressed tar stream
    (e.g. :meth:`~hpcbridge.images.layers.decoded.DecodedLayers.second`); by
    default each layer blob is decompressed again.  ``on_data(i, n)`` hears the
    ``n`` data bytes of each file written from layer ``i`` (-1: scaffold files).
    """
    o = _Out(out)
    for path, mode in plan.dirs:
        o.write(_header(path, tarfile.DIRTYPE, mode, dir_mtime))
    for path, target, mtime in plan.symlinks:
        o.write(_header(path, tarfile.SYMTYPE, 0o777, mtime, linkname=target))
    for node, paths in plan.inline:
        assert isinstance(node.data, bytes)
        _emit_file(o, node, paths, node.data, None)
        if on_data is not None:
            on_data(-1, node.size)
    for li, layer in enumerate(layers):
        wanted = plan.members.get(li)
        if not wanted:
            continue
        left = len(wanted)
        stream = (
            open_decompressed(layer)  # type: ignore[arg-type]
            if open_stream is None
            else open_stream(li)
        )
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_TAR_BUF) as tf:  # type: ignore[call-overload]
                for ordinal, ti in enumerate(members(tf)):
                    hit = wanted.get(ordinal)
                    if hit is None:
                        continue
                    node, paths = hit
                    if ti.size != node.size:
                        raise ImageError(
                            f"layer {getattr(layer, 'digest', li)} changed between two reads",
                            "the blob store is not stable; convert again",
                        )
                    _emit_file(o, node, paths, None, tf.extractfile(ti) if ti.size else None)
                    if on_data is not None:
                        on_data(li, node.size)
                    left -= 1
                    if not left:
                        break
        except tarfile.TarError as exc:
            raise ImageError(
                f"layer {getattr(layer, 'digest', li)} is not a valid tar archive: {exc}",
                "the layer blob is corrupt or not a filesystem layer",
            ) from exc
        finally:
            stream.close()
        if left:
            raise ImageError(
                f"layer {getattr(layer, 'digest', li)} changed between two reads",
                "the blob store is not stable; convert again",
            )
    o.write(bytes(2 * _BLOCK))
