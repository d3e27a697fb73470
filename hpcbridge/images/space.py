"""Free space for a conversion, checked before it starts; the refusal names the filesystem."""

from __future__ import annotations

import os
from pathlib import Path

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import Cache, human_size


def check_space(cache: Cache, tmp_needed: int, cache_needed: int) -> None:
    """Refuse to start when the tmp dir or the cache cannot hold the estimate; one line
    naming the filesystem (its mount point), the directory and the key to change."""
    tmp_st, cache_st = os.statvfs(cache.tmp_dir), os.statvfs(cache.sif_dir)
    same = os.stat(cache.tmp_dir).st_dev == os.stat(cache.sif_dir).st_dev
    checks = [(cache.sif_dir, "cache.dir", cache_needed + (tmp_needed if same else 0), cache_st)]
    if not same:
        checks.append((cache.tmp_dir, "cache.tmp_dir", tmp_needed, tmp_st))
    for where, key, needed, st in checks:
        free = st.f_bavail * st.f_frsize
        if free < needed:
            raise ImageError(
                f"not enough free space for this image on the filesystem mounted at "
                f"{mount_point(where)} (holding {where}): about {human_size(needed)} "
                f"needed, {human_size(free)} free",
                f"free space there, or point {key} at a larger filesystem",
            )


def mount_point(path: Path) -> str:
    """The mount point of the filesystem holding ``path``."""
    p = os.path.realpath(path)
    while not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p
