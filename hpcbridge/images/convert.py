"""``convert``: an image reference in, a cached SIF pinned to the manifest digest out.

The warm path is cheap on purpose: parse, one HEAD request for a tag (none for a
digest reference or ``--offline``), a ``stat`` of ``<cache>/sif/<hex>.sif``.
The cold path takes the digest's lock (one conversion per digest however many
processes ask; the others wait and return the same path), fetches, builds into a
hidden temp file next to the final one and publishes it with a rename.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.cache import Cache, file_sha256, temp_name
from hpcbridge.images.conversion import Conversion, ConvertResult, check_platform
from hpcbridge.images.refs import RegistryRef, SifRef, parse_platform, parse_ref

__all__ = ["BACKENDS", "COMPRESSIONS", "ConvertResult", "check_platform", "convert", "copy_out"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
BACKENDS = ("native", "apptainer")
COMPRESSIONS = ("gzip", "zstd", "xz", "lzo", "lz4", "lzma")


def convert(
    ref: str,
    *,
    cache_dir: Path,
    tmp_dir: Optional[Path] = None,
    backend: str = "native",
    platform: str = "linux/amd64",
    force: bool = False,
    offline: bool = False,
    insecure: bool = False,
    output: Optional[Path] = None,
    compression: str = "gzip",
    level: int = 9,
    apptainer_exe: str = "apptainer",
    progress: Optional[Progress] = None,
    shared: bool = False,
    group: str = "",
    insecure_registries: Sequence[str] = (),
) -> ConvertResult:
    """Convert ``ref`` to a SIF in the cache (see the module docstring)."""
    if backend not in BACKENDS:
        raise InputError(
            f"unknown convert backend {backend!r}", f"use one of: {', '.join(BACKENDS)}"
        )
    if compression not in COMPRESSIONS:
        raise InputError(
            f"unknown compression {compression!r}", f"use one of: {', '.join(COMPRESSIONS)}"
        )
    plat = parse_platform(platform)
    parsed = parse_ref(ref)
    if isinstance(parsed, SifRef):
        return _pass_through(ref, parsed, output)
    cache = Cache(Path(cache_dir), tmp_dir=tmp_dir, shared=shared, group=group)
    job = Conversion(ref, parsed, cache, plat, force, progress)
    if isinstance(parsed, RegistryRef):
        insecure = (
            insecure
            or parsed.registry in insecure_registries
            or parsed.api_host in insecure_registries
        )
        result = job.from_registry(parsed, offline=offline, insecure=insecure)
    else:
        result = job.from_local(parsed)
    if result is None:
        result = job.build(backend, compression, level, apptainer_exe, insecure)
    if output is not None:
        copy_out(result.path, Path(output))
        result = dataclasses.replace(result, output=Path(output))
    return result


def convert_with_config(ref: str, cfg: Any, **overrides: Any) -> ConvertResult:
    """:func:`convert` with the cache, backend and compression a :class:`Config` names.

    Every caller (the CLI, submit, wrap, export/rerun, doctor) goes through here so
    they all honour the same configuration; ``overrides`` replace single arguments
    (``force``, ``offline``, ``output``, ``progress``, ``platform``, ...).
    """
    args: dict[str, Any] = {
        "cache_dir": cfg.cache.dir,
        "tmp_dir": cfg.cache.tmp_dir,
        "backend": cfg.convert.backend,
        "platform": cfg.convert.platform,
        "compression": cfg.convert.compression,
        "level": cfg.convert.level,
        "apptainer_exe": cfg.runtime.executable or cfg.runtime.flavor,
        "shared": cfg.cache.shared,
        "group": cfg.cache.group,
        "insecure_registries": cfg.convert.insecure_registries,
    }
    args.update(overrides)
    return convert(ref, **args)


def _pass_through(ref: str, parsed: SifRef, output: Optional[Path]) -> ConvertResult:
    path = Path(parsed.path).expanduser()
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(
            f"cannot read SIF {str(path)!r}: {exc.strerror}", "check the path"
        ) from exc
    if head[32:41] != b"SIF_MAGIC":
        raise InputError(
            f"{str(path)!r} is not a SIF file", "give a .sif built by apptainer or hpcbridge"
        )
    sha = file_sha256(path)
    if output is not None:
        copy_out(path, Path(output))
    return ConvertResult(
        ref, "sha256:" + sha, path.resolve(), sha, True, Path(output) if output else None
    )


def copy_out(src: Path, dest: Path) -> None:
    """Put a copy of ``src`` at ``dest`` atomically (hard link when possible)."""
    dest = dest.expanduser()
    if dest.is_dir():
        dest = dest / src.name
    tmp = dest.with_name(temp_name(dest.name))
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise ImageError(f"cannot write {dest}: {exc.strerror}", "choose another -o path") from exc
