"""The SIF cache as ``images list|usage|inspect|prune`` see it: entries, usage, pruning.

The cache (:mod:`.cache`) stores and deletes; :mod:`.prune` chooses what to
remove; this module finds an entry by digest prefix or reference, accounts for
every byte under the cache directory (:func:`usage`: SIFs, the downloaded layers
kept after conversion, interrupted downloads, metadata, scratch space) and
carries out a prune (downloaded blobs are only a download cache: all of them go
with ``--blobs``, ``--max-size`` or ``--all``, those older than ``--older-than``
otherwise).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.cache import Cache, Entry
from hpcbridge.images.preview import META_DIR


@dataclass(frozen=True)
class CachedImage:
    """One cached SIF and its record."""

    digest: str
    path: Path
    size: int
    last_used: float
    record: dict[str, Any]

    @classmethod
    def of(cls, entry: Entry) -> CachedImage:
        return cls(entry.digest, entry.path, entry.size, entry.last_used, dict(entry.record))

    @property
    def refs(self) -> list[str]:
        return list(self.record.get("refs") or [])

    def to_dict(self) -> dict[str, Any]:
        """The ``images list --json`` entry."""
        return {
            "digest": self.digest,
            "path": str(self.path),
            "size": self.size,
            "last_used": self.last_used,
            "created": self.record.get("created"),
            "sif_sha256": self.record.get("sif_sha256"),
            "refs": self.refs,
            "backend": self.record.get("backend"),
        }

    def full_dict(self) -> dict[str, Any]:
        """The ``images inspect`` document: the record with the entry's facts on top."""
        data = dict(self.record)
        data.update(self.to_dict())
        return data


#: What each part of the cache holds, in the order ``images list`` and ``usage`` show them.
USAGE_KINDS = {
    "images": "converted SIFs",
    "blobs": "downloaded layers kept for the next conversion",
    "partial": "interrupted downloads, resumed by the next conversion",
    "metadata": "image records, tag resolutions, previews, locks, probes",
    "scratch": "unpacking space and unfinished SIFs (removed when their process ends)",
    "other": "files hpcbridge did not write",
}


@dataclass(frozen=True)
class CacheUsage:
    """Files and bytes under the cache directory, by kind (see :data:`USAGE_KINDS`)."""

    root: Path
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def to_dict(self) -> dict[str, Any]:
        """``images usage --json``."""
        return {
            "root": str(self.root),
            "total": self.total,
            "kinds": {
                k: {"files": self.files.get(k, 0), "bytes": self.bytes.get(k, 0), "what": what}
                for k, what in USAGE_KINDS.items()
            },
        }


def usage(cache: Cache) -> CacheUsage:
    """Every file under the cache directory, counted once under its kind."""
    out = CacheUsage(cache.root)
    if not cache.root.is_dir():
        return out
    for dirpath, _dirs, names in os.walk(cache.root):
        for name in names:
            path = Path(dirpath, name)
            try:
                size = path.lstat().st_size
            except FileNotFoundError:
                continue
            kind = _kind(cache, path)
            out.files[kind] = out.files.get(kind, 0) + 1
            out.bytes[kind] = out.bytes.get(kind, 0) + size
    return out


def _kind(cache: Cache, path: Path) -> str:
    parent, name = path.parent, path.name
    if parent == cache.sif_dir:
        if name.startswith("."):
            return "scratch"
        return "images" if name.endswith(".sif") else "metadata"
    if parent == cache.blob_dir:
        return "partial" if ".partial" in name else ("scratch" if name.startswith(".") else "blobs")
    if cache.tmp_dir in path.parents:
        return "scratch"
    top = path.relative_to(cache.root).parts[0]
    return "metadata" if top in ("refs", "locks", META_DIR, "probe") else "other"


@dataclass(frozen=True)
class Listing:
    """The cached images, most recently used first, and what the whole cache holds."""

    root: Path
    sif_dir: Path
    images: tuple[CachedImage, ...]
    usage: CacheUsage = field(default_factory=lambda: CacheUsage(Path()))

    @property
    def total(self) -> int:
        return sum(i.size for i in self.images)


@dataclass(frozen=True)
class Removed:
    """One file a prune removed (or, in a dry run, would remove)."""

    kind: str  # "sif" or "blob"
    path: Path
    size: int
    image: Optional[CachedImage] = None  # for a SIF

    def to_dict(self) -> dict[str, Any]:
        if self.image is not None:
            return {"kind": "sif", **self.image.to_dict()}
        return {"kind": self.kind, "path": str(self.path), "size": self.size}


@dataclass(frozen=True)
class Pruned:
    dry_run: bool
    removed: tuple[Removed, ...]

    @property
    def freed(self) -> int:
        return sum(r.size for r in self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [r.to_dict() for r in self.removed],
            "freed": self.freed,
        }


def listing(cache: Cache) -> Listing:
    entries = sorted(cache.entries(), key=lambda e: -e.last_used)
    images = tuple(CachedImage.of(e) for e in entries)
    return Listing(cache.root, cache.sif_dir, images, usage(cache))


def find(cache: Cache, what: str) -> CachedImage:
    """The one cached image a digest (prefix) or reference names."""
    entries = cache.entries()
    key = what if what.startswith("sha256:") else f"sha256:{what}"
    hits = [e for e in entries if e.digest.startswith(key)] if len(key) > 10 else []
    if not hits:
        hits = [e for e in entries if what in (e.record.get("refs") or [])]
    if not hits:
        hits = _by_reference(entries, what)
    if len(hits) > 1:
        raise InputError(
            f"{what!r} matches {len(hits)} cached images", "give more digits of the digest"
        )
    if not hits:
        raise InputError(
            f"no cached image matches {what!r}",
            "`hpcbridge images list` shows the digests and references",
        )
    return CachedImage.of(hits[0])


def _by_reference(entries: list[Entry], what: str) -> list[Entry]:
    from hpcbridge.images.refs import RegistryRef, parse_ref

    try:
        ref = parse_ref(what)
    except (InputError, ImageError):
        return []
    if not isinstance(ref, RegistryRef):
        return []
    names = {str(ref), f"{ref.name}:{ref.tag}"}
    return [e for e in entries if names & set(e.record.get("refs") or []) or e.digest == ref.digest]


def prune(
    cache: Cache,
    *,
    older_than: Optional[str] = None,
    max_size: Optional[str] = None,
    remove_all: bool = False,
    blobs: bool = False,
    dry_run: bool = False,
) -> Pruned:
    """Remove images by age and/or total size (``remove_all``: everything), and blobs
    (``blobs``: every downloaded layer and interrupted download, the images stay)."""
    from hpcbridge.images.prune import parse_age, parse_size, select_prune

    if not (older_than or max_size or remove_all or blobs):
        raise InputError(
            "images prune needs --older-than, --max-size, --blobs or --all",
            "e.g. hpcbridge images prune --older-than 30d --max-size 50G",
        )
    now = time.time()
    age = parse_age(older_than) if older_than else None
    size = parse_size(max_size) if max_size else None
    entries = cache.entries()
    if remove_all:
        chosen = entries
    elif age is None and size is None:
        chosen = []
    else:
        chosen = select_prune(entries, now=now, older_than=age, max_size=size)
    removed: list[Removed] = []
    for e in chosen:
        if dry_run or cache.remove_entry(e):
            removed.append(Removed("sif", e.path, e.size, CachedImage.of(e)))
    every_blob = remove_all or blobs or size is not None
    for path, bsize, mtime in cache.blob_entries():
        if every_blob or (age is not None and now - mtime > age):
            if not dry_run:
                path.unlink(missing_ok=True)
            removed.append(Removed("blob", path, bsize))
    if every_blob:
        removed += _partials(cache, dry_run)
    if remove_all:
        removed += _metadata(cache, dry_run)
    if not dry_run:
        cache.sweep(now)
    return Pruned(dry_run, tuple(removed))


def _partials(cache: Cache, dry_run: bool) -> list[Removed]:
    """Interrupted downloads nobody is resuming right now (a downloader holds a lock)."""
    import fcntl

    out: list[Removed] = []
    if not cache.blob_dir.is_dir():
        return out
    for path in cache.blob_dir.glob(".*.partial"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            files = [path, path.with_name(path.name + ".json")]
            out.append(Removed("partial", path, sum(_size(p) for p in files)))
            if not dry_run:
                for p in files:
                    p.unlink(missing_ok=True)
        except OSError:
            continue  # being resumed right now
        finally:
            os.close(fd)
    return out


def _metadata(cache: Cache, dry_run: bool) -> list[Removed]:
    """Previews and tag resolutions (``--all``): re-fetched when needed."""
    out: list[Removed] = []
    for d in (cache.root / META_DIR, cache.refs_dir):
        for path in sorted(d.glob("*.json")) if d.is_dir() else []:
            out.append(Removed("metadata", path, _size(path)))
            if not dry_run:
                path.unlink(missing_ok=True)
    return out


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0
