"""Small filesystem helpers shared by the cache and the state store.

Writes are atomic: data goes to a temporary file in the destination directory,
is flushed to disk and renamed over the target, so a reader (on this host or
another one sharing the filesystem) sees either the old file or the new one,
never a partial one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def xdg_dir(kind: str, environ: Optional[dict[str, str]] = None) -> Path:
    """``$XDG_<KIND>_HOME/hpcbridge`` with the XDG defaults (cache, config, state, data)."""
    env = os.environ if environ is None else environ
    defaults = {
        "cache": ".cache",
        "config": ".config",
        "state": ".local/state",
        "data": ".local/share",
    }
    if kind not in defaults:
        raise ValueError(f"unknown XDG kind {kind!r}")
    base = env.get(f"XDG_{kind.upper()}_HOME") or ""
    root = Path(base) if base and os.path.isabs(base) else Path(env.get("HOME") or Path.home())
    if not (base and os.path.isabs(base)):
        root = root / defaults[kind]
    return root / "hpcbridge"


@contextlib.contextmanager
def undo_new_dirs(*paths: PathLike) -> Iterator[None]:
    """Remove again, if the block fails, the directories of ``paths`` (and their
    parents) that did not exist before it and are still empty: a refused command
    leaves no empty cache or state directory behind."""
    created = []
    for p in map(Path, paths):
        if not p.exists():
            while not p.parent.exists() and p.parent != p:
                p = p.parent
            created.append(p)
    try:
        yield
    except BaseException:
        for top in created:
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        raise


def ensure_dir(path: PathLike, mode: int = 0o755) -> Path:
    """Create ``path`` (and parents) if missing; new directories get ``mode``."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=mode)
    return p


@contextlib.contextmanager
def atomic_writer(path: PathLike, mode: int = 0o644) -> Iterator[int]:
    """Yield a file descriptor of a temp file that replaces ``path`` on success.

    On any exception the temp file is removed and ``path`` is untouched.
    """
    target = Path(path)
    import tempfile  # here: every command imports fsutil, few write files (~1 ms)

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        yield fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_writer(path, mode) as fd:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def atomic_write_text(path: PathLike, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)
