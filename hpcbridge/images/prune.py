"""What ``images prune`` removes: ``--older-than``/``--max-size`` parsed, entries chosen.

Unused for longer than the age first, then the least recently used until the
rest fits in the size.  Pure: the cache lists and deletes (:mod:`.cache`).
"""

from __future__ import annotations

from typing import Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import Entry


def parse_size(text: str) -> int:
    """``500M``, ``20G``, ``1.5T``, ``1024`` (bytes) -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = float(t)
    except ValueError:
        raise ImageError(
            f"invalid size {text!r}", "use a number with K, M, G or T, e.g. 20G"
        ) from None
    if value < 0:
        raise ImageError(f"invalid size {text!r}", "sizes cannot be negative")
    return int(value * mult)


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600`` (seconds) -> seconds."""
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    mult = 1
    if t and t[-1] in units:
        t, mult = t[:-1], units[t[-1]]
    try:
        value = float(t)
    except ValueError:
        raise ImageError(
            f"invalid age {text!r}", "use a number with s, m, h, d or w, e.g. 30d"
        ) from None
    if value < 0:
        raise ImageError(f"invalid age {text!r}", "ages cannot be negative")
    return value * mult


def select_prune(
    entries: list[Entry],
    *,
    now: float,
    older_than: Optional[float] = None,
    max_size: Optional[int] = None,
) -> list[Entry]:
    """Which entries to remove: unused for ``older_than``; then least recently used
    until the rest fits in ``max_size``.  Pure."""
    chosen: list[Entry] = []
    keep: list[Entry] = []
    for e in sorted(entries, key=lambda e: (e.last_used, e.digest)):
        if older_than is not None and now - e.last_used > older_than:
            chosen.append(e)
        else:
            keep.append(e)
    if max_size is not None:
        total = sum(e.size for e in keep)
        for e in list(keep):
            if total <= max_size:
                break
            chosen.append(e)
            keep.remove(e)
            total -= e.size
    return chosen
