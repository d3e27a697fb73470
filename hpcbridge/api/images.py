"""Images: convert, the SIF cache (list, inspect, prune) and command wrappers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from hpcbridge.api._common import config

if TYPE_CHECKING:
    from hpcbridge.images.cache import Cache
    from hpcbridge.images.convert import ConvertResult
    from hpcbridge.images.inventory import CachedImage, Listing, Pruned
    from hpcbridge.wrap import Wrapped

#: convert's progress callback: (stage, done, total)
Progress = Callable[[str, int, int], None]


def convert(
    ref: str,
    *,
    output: Optional[Path] = None,
    backend: Optional[str] = None,
    platform: Optional[str] = None,
    force: bool = False,
    offline: bool = False,
    insecure: bool = False,
    cache_dir: Optional[Path] = None,
    tmp_dir: Optional[Path] = None,
    compression: Optional[str] = None,
    level: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> ConvertResult:
    """Convert ``ref`` to a SIF in the cache (options None: the configuration decides)."""
    from hpcbridge.images.convert import convert_with_config

    cfg = config(
        {
            "cache.dir": str(cache_dir) if cache_dir else None,
            "cache.tmp_dir": str(tmp_dir) if tmp_dir else None,
            "convert.backend": backend,
            "convert.platform": platform,
            "convert.compression": compression,
            "convert.level": level,
        },
        {
            "cache.dir": "--cache-dir",
            "cache.tmp_dir": "--tmp-dir",
            "convert.backend": "--backend",
            "convert.platform": "--platform",
            "convert.compression": "--compression",
            "convert.level": "--level",
        },
    )
    return convert_with_config(
        ref, cfg, force=force, offline=offline, insecure=insecure, output=output, progress=progress
    )


def _cache(cache_dir: Optional[Path]) -> Cache:
    from hpcbridge.images.cache import Cache

    cfg = config({"cache.dir": str(cache_dir) if cache_dir else None}, {"cache.dir": "--cache-dir"})
    return Cache(
        cfg.cache.dir, tmp_dir=cfg.cache.tmp_dir, shared=cfg.cache.shared, group=cfg.cache.group
    )


def images_list(cache_dir: Optional[Path] = None) -> Listing:
    """The cached SIFs, most recently used first."""
    from hpcbridge.images.inventory import listing

    return listing(_cache(cache_dir))


def images_inspect(what: str, cache_dir: Optional[Path] = None) -> CachedImage:
    """The cached image a digest (prefix) or reference names."""
    from hpcbridge.images.inventory import find

    return find(_cache(cache_dir), what)


def images_prune(
    *,
    cache_dir: Optional[Path] = None,
    older_than: Optional[str] = None,
    max_size: Optional[str] = None,
    remove_all: bool = False,
    blobs: bool = False,
    dry_run: bool = False,
) -> Pruned:
    """Remove cached images (and downloaded blobs) by age and/or total size; ``blobs``:
    every downloaded layer (the images stay)."""
    from hpcbridge.images.inventory import prune

    return prune(
        _cache(cache_dir),
        older_than=older_than,
        max_size=max_size,
        remove_all=remove_all,
        blobs=blobs,
        dry_run=dry_run,
    )


def human_size(n: float) -> str:
    """``1536`` -> ``1.5 KiB`` (as ``images list`` prints sizes)."""
    from hpcbridge.images.cache import human_size as size_text

    return size_text(n)


def wrap(
    image: str,
    commands: Sequence[str],
    bin_dir: Path,
    *,
    module: Optional[Path] = None,
    binds: Sequence[str] = (),
    cleanenv: bool = False,
    gpu: Optional[str] = None,
    force: bool = False,
    progress: Optional[Progress] = None,
) -> Wrapped:
    """Write executables running ``commands`` of ``image`` (converted once, pinned)."""
    from hpcbridge.wrap import wrap_image

    return wrap_image(
        config(),
        image,
        commands,
        bin_dir,
        module=module,
        binds=binds,
        cleanenv=cleanenv,
        gpu=gpu,
        force=force,
        progress=progress,
    )
