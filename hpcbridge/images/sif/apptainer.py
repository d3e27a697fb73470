"""The ``apptainer`` conversion backend: ``apptainer build`` run through the runner.

spython is not used here: its Client hard-codes the ``singularity`` binary,
splits string arguments on spaces and calls ``sys.exit`` on some errors.  The
argv is built here (pure) and run by :mod:`hpcbridge.runner`; the SIF is written
to a temp path inside the cache and published by the caller with a rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from hpcbridge.errors import CommandError, ImageError
from hpcbridge.images.refs import ArchiveRef, ImageRef, Platform, RegistryRef
from hpcbridge.images.sif.compression import (
    DEFAULT_COMPRESSOR,
    DEFAULT_LEVEL,
    effective_level,
    mksquashfs_args,
)


def source_uri(ref: ImageRef, manifest_digest: Optional[str]) -> str:
    """What ``apptainer build`` is given: registry refs pinned to the resolved digest."""
    if isinstance(ref, RegistryRef):
        return (
            f"docker://{ref.name}@{manifest_digest or ref.digest}"
            if (manifest_digest or ref.digest)
            else str(ref)
        )
    if isinstance(ref, ArchiveRef):
        path = str(Path(ref.path).expanduser().resolve())
        return f"{ref.kind}:{path}" + (f":{ref.tag}" if ref.tag else "")
    raise ImageError(f"the apptainer backend cannot build from {ref}")


def build_argv(
    exe: str,
    source: str,
    out: Path,
    *,
    no_https: bool = False,
    arch: Optional[str] = None,
    mksquashfs_args: Sequence[str] = (),
) -> list[str]:
    """``apptainer build --force [--no-https] [--arch A] --disable-cache OUT SOURCE``."""
    argv = [exe, "build", "--force", "--disable-cache"]
    if no_https:
        argv.append("--no-https")
    if arch:
        argv += ["--arch", arch]
    if mksquashfs_args:
        argv += ["--mksquashfs-args", " ".join(mksquashfs_args)]
    argv += [str(out), source]
    return argv


def build(
    ref: ImageRef,
    manifest_digest: Optional[str],
    out: Path,
    *,
    tmp_dir: Path,
    exe: str = "apptainer",
    no_https: bool = False,
    platform: Platform = ("linux", "amd64", None),
    compression: str = DEFAULT_COMPRESSOR,
    level: Optional[int] = None,
    timeout: Optional[float] = None,
) -> None:
    """Run ``apptainer build`` into ``out`` (a temp path the caller renames)."""
    from hpcbridge import runner

    source = source_uri(ref, manifest_digest)
    extra: list[str] = []
    if (compression, effective_level(compression, level)) != (DEFAULT_COMPRESSOR, DEFAULT_LEVEL):
        extra = mksquashfs_args(compression, level)
    argv = build_argv(
        exe,
        source,
        out,
        no_https=no_https,
        arch=platform[1] if platform[1] != "amd64" else None,
        mksquashfs_args=extra,
    )
    env = {"APPTAINER_TMPDIR": str(tmp_dir), "SINGULARITY_TMPDIR": str(tmp_dir)}
    try:
        runner.run(argv, extra_env=env, timeout=timeout)
    except CommandError as exc:
        raise ImageError(
            f"apptainer build of {source} failed: {exc.message}",
            "see the message above; the native backend (--backend native) needs no apptainer",
        ) from exc
    if not out.is_file():
        raise ImageError(f"apptainer build of {source} reported success but wrote no {out}")
