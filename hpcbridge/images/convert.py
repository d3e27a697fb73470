"""``convert``: an image reference in, a cached SIF pinned to the manifest digest out.

The public entry points: :func:`convert`, :func:`convert_with_config` (the same
with the settings of a :class:`~hpcbridge.config.schema.Config`) and
:func:`copy_out`.  A reference is first resolved to its manifest digest and
looked up in the cache (:mod:`hpcbridge.images.resolve`: the warm path, one
HEAD request for a tag); on a miss the SIF is built under the digest's lock and
published with a rename (:mod:`hpcbridge.images.publish`: the cold path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.cache import Cache, file_sha256, temp_name
from hpcbridge.images.refs import (
    RegistryRef,
    SifRef,
    image_file_format,
    parse_platform,
    parse_ref,
)
from hpcbridge.images.resolve import Hit, Resolution
from hpcbridge.images.sif import compression as squashfs_compression

__all__ = ["BACKENDS", "ConvertResult", "convert", "convert_with_config", "copy_out"]

Progress = Callable[[str, int, int], None]
BACKENDS = ("native", "apptainer")


@dataclass(frozen=True)
class ConvertResult:
    ref: str
    digest: str  # "sha256:<manifest digest>"
    path: Path  # the cached SIF
    sif_sha256: str
    cached: bool  # True when no conversion ran in this call
    output: Optional[Path] = None  # where -o put a copy
    workdir: Optional[str] = None  # the image's WorkingDir (Apptainer ignores it: use --pwd)
    labels: Optional[dict[str, str]] = None  # the image's labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "path": str(self.path),
            "sif_sha256": self.sif_sha256,
            "cached": self.cached,
            "output": str(self.output) if self.output else None,
            "workdir": self.workdir,
            "labels": self.labels,
        }


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
    compression: str = squashfs_compression.DEFAULT_SETTING,
    level: Optional[int] = None,
    apptainer_exe: str = "apptainer",
    progress: Optional[Progress] = None,
    shared: bool = False,
    group: str = "",
    insecure_registries: Sequence[str] = (),
    state_dir: Optional[Path] = None,
    mksquashfs_mem: Optional[int] = None,
    mksquashfs_procs: Optional[int] = None,
) -> ConvertResult:
    """Convert ``ref`` to a SIF in the cache (see the module docstring).

    ``level`` None: the default level of a compressor that takes one; a level
    for one that takes none (xz, lz4) is refused, like an unknown compressor.
    ``compression`` ``auto``: zstd if the probe record in ``state_dir`` proves
    that ``apptainer_exe`` reads it (:mod:`hpcbridge.images.readable`), else
    gzip.  ``mksquashfs_mem`` (MiB) and ``mksquashfs_procs``: mksquashfs's
    ``-mem`` and ``-processors`` (None: 256 MiB, the CPUs this process may use).
    ``progress``: see :mod:`hpcbridge.images.progress`.
    """
    if backend not in BACKENDS:
        raise InputError(
            f"unknown convert backend {backend!r}", f"use one of: {', '.join(BACKENDS)}"
        )
    squashfs_compression.check(compression, level)
    plat = parse_platform(platform)
    parsed = parse_ref(ref)
    cache = Cache(Path(cache_dir), tmp_dir=tmp_dir, shared=shared, group=group)
    if isinstance(parsed, SifRef):
        return _local_file(ref, parsed, cache, plat[1], output)
    res = Resolution(ref, parsed, cache, plat, force)
    if isinstance(parsed, RegistryRef):
        insecure = (
            insecure
            or parsed.registry in insecure_registries
            or parsed.api_host in insecure_registries
        )
        hit = res.from_registry(parsed, offline=offline, insecure=insecure)
    else:
        hit = res.from_local(parsed)
    if hit is None:
        from hpcbridge.images.publish import build_and_publish  # the cold path only

        hit = build_and_publish(
            res,
            backend=backend,
            compression=compression,
            level=level,
            exe=apptainer_exe,
            insecure=insecure,
            progress=progress,
            state_dir=state_dir,
            mem_mib=mksquashfs_mem,
            processors=mksquashfs_procs,
        )
    result = _result(ref, hit)
    if output is not None:
        copy_out(result.path, Path(output))
        result = dataclasses.replace(result, output=Path(output))
    return result


def _result(ref: str, hit: Hit) -> ConvertResult:
    return ConvertResult(
        ref,
        hit.digest,
        hit.path,
        str(hit.record["sif_sha256"]),
        hit.cached,
        workdir=hit.record.get("workdir"),
        labels=hit.record.get("labels"),
    )


def convert_with_config(ref: str, cfg: Any, **overrides: Any) -> ConvertResult:
    """:func:`convert` with the cache, backend and compression a :class:`Config` names.

    Every caller (the CLI, submit, wrap, export/rerun, doctor) goes through here so
    they all honour the same configuration; ``overrides`` replace single arguments
    (``force``, ``offline``, ``output``, ``progress``, ``platform``, ...).  The
    configured level applies to compressors that take one (the configuration
    refuses a level set for one that takes none).
    """
    compression = cfg.convert.compression
    args: dict[str, Any] = {
        "cache_dir": cfg.cache.dir,
        "tmp_dir": cfg.cache.tmp_dir,
        "backend": cfg.convert.backend,
        "platform": cfg.convert.platform,
        "compression": compression,
        "level": cfg.convert.level if squashfs_compression.takes_level(compression) else None,
        "apptainer_exe": cfg.runtime.executable or cfg.runtime.flavor,
        "shared": cfg.cache.shared,
        "group": cfg.cache.group,
        "insecure_registries": cfg.convert.insecure_registries,
        "state_dir": cfg.state.dir,
        "mksquashfs_mem": cfg.convert.mksquashfs_mem,
        "mksquashfs_procs": cfg.convert.mksquashfs_procs,
    }
    args.update(overrides)
    return convert(ref, **args)


def _local_file(
    ref: str, parsed: SifRef, cache: Cache, arch: str, output: Optional[Path]
) -> ConvertResult:
    """An enroot squashfs becomes a cached SIF, its environment and entrypoint kept
    (images/sif/from_squashfs.py); a SIF or another squashfs is passed through."""
    from hpcbridge.images.sif import from_squashfs

    path = Path(parsed.path).expanduser()
    if not from_squashfs.is_enroot_image(path):
        return _pass_through(ref, parsed, output)
    got = from_squashfs.convert_squashfs(path, cache, arch=arch)
    result = _result(ref, Hit(got.digest, got.path, got.record, cached=got.cached))
    if output is not None:
        copy_out(result.path, Path(output))
        result = dataclasses.replace(result, output=Path(output))
    return result


def _pass_through(ref: str, parsed: SifRef, output: Optional[Path]) -> ConvertResult:
    path = Path(parsed.path).expanduser()
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(
            f"cannot read image file {str(path)!r}: {exc.strerror}", "check the path"
        ) from exc
    if image_file_format(head) is None:
        raise InputError(
            f"{str(path)!r} is not a SIF file or a squashfs image",
            "give a SIF or squashfs image file, or docker-archive:PATH / oci:DIR",
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
            import shutil

            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise ImageError(f"cannot write {dest}: {exc.strerror}", "choose another -o path") from exc
