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

import contextlib
import errno
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from hpcbridge.errors import ImageError
from hpcbridge.images.decompress import BinaryReader, open_decompressed

log = logging.getLogger(__name__)

_MAX_SYMLINKS = 255
_CHUNK = 1 << 20
_OPAQUE = ".wh..wh..opq"
_WH = ".wh."


class Layer(Protocol):
    """One stored layer blob (possibly compressed), as the fetch side hands it over."""

    digest: str
    media_type: str
    size: int

    def open(self) -> BinaryReader: ...


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
    """Writes layer entries into ``root``; never touches anything outside it."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.stats = ApplyStats()
        self._dir_cache: dict[tuple[str, ...], str] = {}
        self._in_layer: set[str] = set()
        self._layer_name = ""

    # -- path resolution -------------------------------------------------
    def _abs(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

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
            path = self._abs(rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(path, 0o755)
                resolved.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise ImageError(
                        f"layer {self._layer_name}: too many levels of symbolic links "
                        f"under /{'/'.join(parts)}",
                        "the image is malformed; rebuild it",
                    )
                target = os.readlink(path)
                if target.startswith("/"):
                    resolved = []
                todo = target.split("/") + todo
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not create:
                    return None
                log.warning(
                    "layer %s: replacing non-directory /%s by a directory", self._layer_name, rel
                )
                self.remove(path, st)
                os.mkdir(path, 0o755)
            resolved.append(comp)
        out = "/".join(resolved)
        self._dir_cache[key] = out
        return out

    def remove(self, path: str, st: Optional[os.stat_result] = None) -> None:
        if st is None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            self._dir_cache.clear()
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self._dir_cache.clear()

    # -- layers ----------------------------------------------------------
    def start_layer(self, name: str) -> None:
        self._in_layer = set()
        self._layer_name = name

    def apply_member(self, ti: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
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
        path = self._abs(rel)
        self._in_layer.add(rel)
        try:
            existing: Optional[os.stat_result] = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if ti.isdir():
            mode = (ti.mode & 0o1777) | 0o700  # the sticky bit of /tmp is kept, as apptainer does
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                if stat.S_IMODE(existing.st_mode) != mode:
                    os.chmod(path, mode)
            else:
                if existing is not None:
                    self.remove(path, existing)
                os.mkdir(path, 0o700)
                os.chmod(path, mode)
            self.stats.dirs += 1
            return
        if ti.islnk():
            self._hardlink(ti, path, existing)
            return
        if existing is not None:
            self.remove(path, existing)
        if ti.issym():
            os.symlink(ti.linkname, path)
            self._dir_cache.clear()
            self._set_mtime(path, ti.mtime, follow=False)
            self.stats.symlinks += 1
            return
        self._write_file(ti, tf, path)

    def _write_file(self, ti: tarfile.TarInfo, tf: tarfile.TarFile, path: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            if ti.size:
                src = tf.extractfile(ti)
                assert src is not None
                remaining = ti.size
                while remaining > 0:
                    chunk = src.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise ImageError(
                            f"layer {self._layer_name}: file {ti.name!r} is truncated",
                            "the layer blob is corrupt; delete it from the cache and fetch again",
                        )
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    remaining -= len(chunk)
            os.fchmod(fd, (ti.mode & 0o777) | 0o400)
            mtime = max(int(ti.mtime), 0)
            os.utime(fd, ns=(mtime * 1_000_000_000, mtime * 1_000_000_000))
        finally:
            os.close(fd)
        self.stats.files += 1

    def _hardlink(self, ti: tarfile.TarInfo, path: str, existing: Optional[os.stat_result]) -> None:
        tparts, escaped = clean_parts(ti.linkname)
        if escaped:
            self.stats.confined.append(f"{ti.name} -> {ti.linkname}")
        tparent = self.resolve_dir(tparts[:-1], create=False) if tparts else None
        target = None
        if tparts and tparent is not None:
            trel = f"{tparent}/{tparts[-1]}" if tparent else tparts[-1]
            target = self._abs(trel)
        try:
            tst = os.lstat(target) if target else None
        except FileNotFoundError:
            tst = None
        if target is None or tst is None or stat.S_ISDIR(tst.st_mode):
            raise ImageError(
                f"layer {self._layer_name}: hard link {ti.name!r} points to {ti.linkname!r}, "
                "which is not a file in the image",
                "the image is malformed or hostile; rebuild it",
            )
        if target == path:
            return
        if existing is not None:
            if os.path.samestat(existing, tst):
                return
            self.remove(path, existing)
        os.link(target, path, follow_symlinks=False)
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
        self.remove(self._abs(rel))

    def _clear_lower(self, rel_dir: str) -> None:
        """Remove everything under ``rel_dir`` that this layer did not write."""
        for name in os.listdir(self._abs(rel_dir)):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = self._abs(rel)
            if rel in self._in_layer:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    self._clear_lower(rel)
                continue
            self.remove(path)

    def ensure_dir(self, path: str) -> None:
        """Make sure directory ``path`` (an image path) exists, confined."""
        parts, _ = clean_parts(path)
        self.resolve_dir(parts, create=True)

    @staticmethod
    def _set_mtime(path: str, mtime: float, *, follow: bool) -> None:
        ns = max(int(mtime), 0) * 1_000_000_000
        with contextlib.suppress(OSError):  # utime on a symlink may be unsupported
            os.utime(path, ns=(ns, ns), follow_symlinks=follow)


def apply_layer(writer: RootfsWriter, layer: Layer) -> None:
    """Decompress and apply one layer to the writer's root."""
    writer.start_layer(layer.digest)
    stream = open_decompressed(layer)
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as tf:  # type: ignore[call-overload]
                for ti in tf:
                    writer.apply_member(ti, tf)
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
    root: str,
    *,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> ApplyStats:
    """Apply ``layers`` in order to the (existing, normally empty) directory ``root``."""
    writer = RootfsWriter(root)
    total = len(layers)
    for i, layer in enumerate(layers):
        if progress is not None:
            progress("extract", i, total)
        apply_layer(writer, layer)
    if progress is not None:
        progress("extract", total, total)
    return writer.stats
