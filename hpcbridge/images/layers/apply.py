"""Apply OCI/Docker image layers, in order, to a root filesystem directory.

Each layer blob is decompressed while it is read (gzip, zstd or plain tar,
detected from the magic bytes and checked against the media type) on a
background thread, so decompression overlaps with writing files.  Entries are
applied with OCI semantics: ``.wh.<name>`` deletes ``<name>`` from lower layers,
``.wh..wh..opq`` hides all lower content of its directory, later entries replace
earlier ones.

Everything stays inside the root filesystem: entry names are cleaned lexically
and clamped at the root (``../x`` and ``/x`` both land on ``<root>/x``, as umoci
and containerd do); every parent component is resolved by hand, a symlink being
followed *inside* the root (an absolute target is relative to the root), and the
final component is never followed.  Device nodes and FIFOs are skipped,
setuid/setgid bits dropped (the sticky bit of directories such as /tmp is kept,
as apptainer keeps it), files made owner-readable and directories
owner-rwx so that a non-root ``mksquashfs`` can read the tree.  Ownership is
ignored (the squashfs is written with ``-all-root``).
"""

from __future__ import annotations

import errno
import logging
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from hpcbridge.errors import ImageError
from hpcbridge.images.layers.decompress import open_decompressed
from hpcbridge.images.layers.tree import DIR, LINK, DiskFS, MemFS, Stat, members
from hpcbridge.images.protocols import BinaryReader, Layer

log = logging.getLogger(__name__)

_MAX_SYMLINKS = 255
_TAR_BUF = 64 << 10
_OPAQUE = ".wh..wh..opq"
_WH = ".wh."


@dataclass
class ApplyStats:
    """What applying layers did; returned for logs and tests."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    skipped: list[str] = field(default_factory=list)
    confined: list[str] = field(default_factory=list)


def clean_parts(name: str) -> tuple[list[str], bool]:
    """Lexically clean a tar member name into components, clamped at the root.

    Returns the components and whether the name tried to leave the root
    (absolute, or ``..`` above the top).
    """
    escaped = name.startswith("/")
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            else:
                escaped = True
            continue
        out.append(part)
    return out, escaped


class RootfsWriter:
    """Writes layer entries into a tree (a :class:`DiskFS` or :class:`MemFS`), confined to it."""

    def __init__(self, root: Union[str, DiskFS, MemFS]) -> None:
        self.fs: Union[DiskFS, MemFS] = DiskFS(root) if isinstance(root, str) else root
        self.root = self.fs.root if isinstance(self.fs, DiskFS) else ""
        self.stats = ApplyStats()
        self._dir_cache: dict[tuple[str, ...], str] = {}
        self._in_layer: set[str] = set()
        self._layer_name = ""
        self._layer_index = 0

    # -- path resolution -------------------------------------------------
    def resolve_dir(self, parts: Sequence[str], *, create: bool) -> Optional[str]:
        """Resolve directory components inside the root, following symlinks confined.

        Returns the resolved path relative to the root ("" = the root), every
        component of which is a real directory.  Missing directories are made
        when ``create``; otherwise None is returned for a missing one.
        """
        key = tuple(parts)
        hit = self._dir_cache.get(key)
        if hit is not None:
            return hit
        fs = self.fs
        resolved: list[str] = []
        todo = list(parts)
        links = 0
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            rel = "/".join([*resolved, comp])
            st = fs.stat(rel)
            if st is None:
                if not create:
                    return None
                fs.mkdir(rel, 0o755, 0)
                resolved.append(comp)
                continue
            if st.kind == LINK:
                links += 1
                if links > _MAX_SYMLINKS:
                    raise ImageError(
                        f"layer {self._layer_name}: too many levels of symbolic links "
                        f"under /{'/'.join(parts)}",
                        "the image is malformed; rebuild it",
                    )
                target = fs.readlink(rel)
                if target.startswith("/"):
                    resolved = []
                todo = target.split("/") + todo
                continue
            if st.kind != DIR:
                if not create:
                    return None
                log.warning(
                    "layer %s: replacing non-directory /%s by a directory", self._layer_name, rel
                )
                self.remove(rel, st)
                fs.mkdir(rel, 0o755, 0)
            resolved.append(comp)
        out = "/".join(resolved)
        self._dir_cache[key] = out
        return out

    def remove(self, rel: str, st: Optional[Stat] = None) -> None:
        """Remove ``rel`` (a resolved path; a directory recursively, a symlink itself)."""
        if st is None:
            st = self.fs.stat(rel)
            if st is None:
                return
        self.fs.remove(rel, st.kind)
        if st.kind in (DIR, LINK):
            self._dir_cache.clear()

    # -- layers ----------------------------------------------------------
    def start_layer(self, name: str, index: int = 0) -> None:
        self._in_layer = set()
        self._layer_name = name
        self._layer_index = index

    def apply_member(
        self, ti: tarfile.TarInfo, tf: Optional[tarfile.TarFile], ordinal: int = 0
    ) -> None:
        """Apply one member; ``tf`` (to read its data) may be None for a MemFS."""
        parts, escaped = clean_parts(ti.name)
        if escaped:
            self.stats.confined.append(ti.name)
            log.warning(
                "layer %s: entry %r confined to /%s", self._layer_name, ti.name, "/".join(parts)
            )
        if not parts:
            return  # the root itself
        base = parts[-1]
        if base.startswith(_WH):
            self._whiteout(parts)
            return
        if (
            ti.ischr()
            or ti.isblk()
            or ti.isfifo()
            or not (ti.isreg() or ti.isdir() or ti.issym() or ti.islnk())
        ):
            self.stats.skipped.append(ti.name)
            log.debug("layer %s: skipping special entry %r", self._layer_name, ti.name)
            return
        parent = self.resolve_dir(parts[:-1], create=True)
        assert parent is not None
        rel = f"{parent}/{base}" if parent else base
        self._in_layer.add(rel)
        fs = self.fs
        existing = fs.stat(rel)
        if ti.isdir():
            mode = (ti.mode & 0o1777) | 0o700  # the sticky bit of /tmp is kept, as apptainer does
            if existing is not None and existing.kind == DIR:
                if existing.mode != mode:
                    fs.chmod(rel, mode)
            else:
                if existing is not None:
                    self.remove(rel, existing)
                fs.mkdir(rel, mode, max(int(ti.mtime), 0))
            self.stats.dirs += 1
            return
        if ti.islnk():
            self._hardlink(ti, rel, existing)
            return
        if existing is not None:
            self.remove(rel, existing)
        if ti.issym():
            fs.symlink(ti.linkname, rel, max(int(ti.mtime), 0))
            self._dir_cache.clear()
            self.stats.symlinks += 1
            return
        mode = (ti.mode & 0o777) | 0o400
        fs.write_member(rel, mode, ti, tf, (self._layer_index, ordinal), self._layer_name)
        self.stats.files += 1

    def _hardlink(self, ti: tarfile.TarInfo, rel: str, existing: Optional[Stat]) -> None:
        tparts, escaped = clean_parts(ti.linkname)
        if escaped:
            self.stats.confined.append(f"{ti.name} -> {ti.linkname}")
        tparent = self.resolve_dir(tparts[:-1], create=False) if tparts else None
        trel = None
        tst = None
        if tparts and tparent is not None:
            trel = f"{tparent}/{tparts[-1]}" if tparent else tparts[-1]
            tst = self.fs.stat(trel)
        if trel is None or tst is None or tst.kind == DIR:
            raise ImageError(
                f"layer {self._layer_name}: hard link {ti.name!r} points to {ti.linkname!r}, "
                "which is not a file in the image",
                "the image is malformed or hostile; rebuild it",
            )
        if trel == rel:
            return
        if existing is not None:
            if existing.ident == tst.ident:
                return
            self.remove(rel, existing)
        self.fs.link(trel, rel)
        self.stats.hardlinks += 1

    def _whiteout(self, parts: list[str]) -> None:
        self.stats.whiteouts += 1
        parent = self.resolve_dir(parts[:-1], create=False)
        if parent is None:
            return
        base = parts[-1]
        if base == _OPAQUE:
            self._in_layer.add(parent)
            self._clear_lower(parent)
            return
        name = base[len(_WH) :]
        if not name or name in (".", ".."):
            return
        rel = f"{parent}/{name}" if parent else name
        if rel in self._in_layer:
            return
        self.remove(rel)

    def _clear_lower(self, rel_dir: str) -> None:
        """Remove everything under ``rel_dir`` that this layer did not write."""
        for name in self.fs.listdir(rel_dir):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in self._in_layer:
                st = self.fs.stat(rel)
                if st is not None and st.kind == DIR:
                    self._clear_lower(rel)
                continue
            self.remove(rel)

    def ensure_dir(self, path: str) -> str:
        """Make sure directory ``path`` (an image path) exists, confined; its resolved path."""
        parts, _ = clean_parts(path)
        out = self.resolve_dir(parts, create=True)
        assert out is not None
        return out


def apply_headers(
    writer: RootfsWriter, layer: Layer, index: int, headers: Iterable[tuple[int, tarfile.TarInfo]]
) -> None:
    """Apply one layer's members from their headers alone (a MemFS needs no data)."""
    writer.start_layer(layer.digest, index)
    for ordinal, ti in headers:
        writer.apply_member(ti, None, ordinal)


def apply_layer(
    writer: RootfsWriter, layer: Layer, index: int = 0, stream: Optional[BinaryReader] = None
) -> None:
    """Decompress and apply one layer to the writer's tree.

    ``stream``: the layer's decompressed tar stream if the caller already has
    one (it is closed here); by default the blob is opened and decompressed.
    """
    writer.start_layer(layer.digest, index)
    if stream is None:
        stream = open_decompressed(layer)
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_TAR_BUF) as tf:  # type: ignore[call-overload]
                for ordinal, ti in enumerate(members(tf)):
                    writer.apply_member(ti, tf, ordinal)
        except tarfile.TarError as exc:
            raise ImageError(
                f"layer {layer.digest} is not a valid tar archive: {exc}",
                "the layer blob is corrupt or not a filesystem layer",
            ) from exc
        except OSError as exc:
            if isinstance(
                exc, (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)
            ):
                raise ImageError(
                    f"layer {layer.digest}: cannot write {exc.filename!r}: {exc.strerror}",
                    "the image is malformed; rebuild it",
                ) from exc
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ImageError(
                    f"no space left while extracting layer {layer.digest} into {writer.root}",
                    "free space there or set cache.tmp_dir to a larger filesystem",
                ) from exc
            raise
    finally:
        stream.close()


def apply_layers(
    layers: Sequence[Layer],
    root: Union[str, DiskFS, MemFS],
    *,
    progress: Optional[Callable[[str, int, int], None]] = None,
    open_stream: Optional[Callable[[int], BinaryReader]] = None,
    open_headers: Optional[Callable[[int], Iterable[tuple[int, tarfile.TarInfo]]]] = None,
) -> RootfsWriter:
    """Apply ``layers`` in order to ``root`` (an existing empty directory, or a MemFS).

    ``open_stream(i)``, if given, returns layer ``i``'s decompressed tar stream;
    ``open_headers(i)`` (a MemFS only, which needs no data) its members'
    ``(ordinal, TarInfo)`` pairs instead
    (:meth:`~hpcbridge.images.layers.decoded.DecodedLayers.first`).
    """
    writer = RootfsWriter(root)
    total = len(layers)
    for i, layer in enumerate(layers):
        if progress is not None:
            progress("extract", i, total)
        if open_headers is not None:
            apply_headers(writer, layer, i, open_headers(i))
        else:
            apply_layer(writer, layer, i, None if open_stream is None else open_stream(i))
    writer.start_layer("", total)  # forget the last layer's names (memory, per file)
    writer._dir_cache.clear()
    if progress is not None:
        progress("extract", total, total)
    return writer
