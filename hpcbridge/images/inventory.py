"""The SIF cache as ``images list|inspect|prune`` see it: typed entries, lookups, pruning.

The cache (:mod:`.cache`) stores and deletes; :mod:`.prune` chooses what to
remove; this module finds an entry by digest prefix or reference and carries
out a prune (downloaded blobs are only a download cache: all of them go with
``--max-size`` or ``--all``, those older than ``--older-than`` otherwise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.cache import Cache, Entry


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


@dataclass(frozen=True)
class Listing:
    """The cached images, most recently used first."""

    root: Path
    sif_dir: Path
    images: tuple[CachedImage, ...]

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
    return Listing(cache.root, cache.sif_dir, tuple(CachedImage.of(e) for e in entries))


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
    dry_run: bool = False,
) -> Pruned:
    """Remove images by age and/or total size (``remove_all``: everything), and blobs."""
    from hpcbridge.images.prune import parse_age, parse_size, select_prune

    if not (older_than or max_size or remove_all):
        raise InputError(
            "images prune needs --older-than, --max-size or --all",
            "e.g. hpcbridge images prune --older-than 30d --max-size 50G",
        )
    now = time.time()
    age = parse_age(older_than) if older_than else None
    size = parse_size(max_size) if max_size else None
    entries = cache.entries()
    chosen = (
        entries if remove_all else select_prune(entries, now=now, older_than=age, max_size=size)
    )
    removed: list[Removed] = []
    for e in chosen:
        if dry_run or cache.remove_entry(e):
            removed.append(Removed("sif", e.path, e.size, CachedImage.of(e)))
    for path, bsize, mtime in cache.blob_entries():
        if remove_all or size is not None or (age is not None and now - mtime > age):
            if not dry_run:
                path.unlink(missing_ok=True)
            removed.append(Removed("blob", path, bsize))
    if not dry_run:
        cache.sweep(now)
    return Pruned(dry_run, tuple(removed))
