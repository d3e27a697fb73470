"""The squashfs compressors a SIF can be written with, and their levels: the one table.

Checked against ``mksquashfs -help`` of squashfs-tools 4.5.1: gzip takes
``-Xcompression-level`` 1..9, zstd 1..22, lzo 1..9; xz and lz4 take no level.
lzma is left out (mksquashfs calls it deprecated, the kernel cannot mount it).
The configuration (``convert.compression``/``convert.level``), the CLI and both
conversion backends read this table.  The setting ``auto`` (the default) is not
a compressor: a conversion turns it into ``zstd`` where the site's runtime was
proven to read zstd (:mod:`hpcbridge.images.readable`) and ``gzip`` elsewhere,
so a level given with it must suit both (1-9).  Pure; a leaf module.
"""

from __future__ import annotations

from typing import Optional

from hpcbridge.errors import InputError

#: name -> (lowest, highest) level, or None when mksquashfs takes no level for it.
LEVELS: dict[str, Optional[tuple[int, int]]] = {
    "gzip": (1, 9),
    "zstd": (1, 22),
    "xz": None,
    "lz4": None,
    "lzo": (1, 9),
}
COMPRESSORS = tuple(LEVELS)
#: What ``auto`` becomes where zstd is not proven, and the compressor of the library default.
DEFAULT_COMPRESSOR = "gzip"
AUTO = "auto"
#: What ``convert.compression`` and ``--compression`` accept, and their default.
SETTINGS = (AUTO, *COMPRESSORS)
DEFAULT_SETTING = AUTO
#: ``auto`` becomes gzip or zstd: a level must suit both.
AUTO_LEVELS = (1, 9)
#: The level used when none is given, for every compressor that takes one.
DEFAULT_LEVEL = 9


def bounds(setting: str) -> Optional[tuple[int, int]]:
    """The levels a compressor (or ``auto``) accepts; None when it takes none."""
    return AUTO_LEVELS if setting == AUTO else LEVELS.get(setting)


def takes_level(compressor: str) -> bool:
    return bounds(compressor) is not None


def with_levels() -> str:
    """``gzip (1-9), zstd (1-22), lzo (1-9)``: for messages."""
    return ", ".join(f"{name} ({b[0]}-{b[1]})" for name, b in LEVELS.items() if b is not None)


def problem(compressor: str, level: Optional[int]) -> Optional[tuple[str, str]]:
    """``(what is wrong, the fix)`` for a compressor and an explicitly given level, else None."""
    if compressor not in SETTINGS:
        return (
            f"unknown squashfs compression {compressor!r}",
            f"use one of {', '.join(SETTINGS)} (gzip works everywhere Apptainer runs)",
        )
    found = bounds(compressor)
    if level is None:
        return None
    if found is None:
        return (
            f"compression level {level} given for {compressor}, which takes no level",
            f"leave the level out, or use a compressor with levels: {with_levels()}",
        )
    lo, hi = found
    if not lo <= level <= hi:
        return (
            f"compression level {level} is out of range for {compressor}",
            f"use a level from {lo} to {hi}"
            + (" (auto may pick gzip, which stops at 9)" if compressor == AUTO else ""),
        )
    return None


def check(compressor: str, level: Optional[int]) -> None:
    """Raise :class:`InputError` naming the value and the fix when :func:`problem` finds one."""
    found = problem(compressor, level)
    if found is not None:
        raise InputError(*found)


def effective_level(compressor: str, level: Optional[int]) -> Optional[int]:
    """The level mksquashfs gets: ``level`` or :data:`DEFAULT_LEVEL`; None if it takes none."""
    if not takes_level(compressor):
        return None
    return DEFAULT_LEVEL if level is None else level


def mksquashfs_args(compressor: str, level: Optional[int]) -> list[str]:
    """``-comp NAME [-Xcompression-level N]`` (N: :func:`effective_level`); checked."""
    if compressor == AUTO:
        raise ValueError("'auto' must be resolved to a compressor before squashing")
    check(compressor, level)
    argv = ["-comp", compressor]
    chosen = effective_level(compressor, level)
    if chosen is not None:
        argv += ["-Xcompression-level", str(chosen)]
    return argv
