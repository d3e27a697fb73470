"""The cold path: build the SIF of a resolved digest under its lock and publish it.

One conversion per digest however many processes ask: the digest's lock is
taken; a process that waited finds the SIF published and returns it.  The
builder fetches the layers, runs a backend (:mod:`hpcbridge.images.sif.native`
or :mod:`hpcbridge.images.sif.apptainer`) into a hidden temp file next to the
final one, renames it into place and writes its record (what later commands
read without opening the SIF: digest, refs, WorkingDir, labels...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import file_sha256, hex_of, temp_name
from hpcbridge.images.fetch.image import Image
from hpcbridge.images.lock import LockInfo
from hpcbridge.images.progress import Reporter
from hpcbridge.images.refs import RegistryRef
from hpcbridge.images.resolve import Hit, Resolution, check_platform
from hpcbridge.images.sif.compression import effective_level

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
# Root filesystem size / stored (compressed) layer size, for the free-space estimate.
EXPANSION = 3.0
# SIF size / stored layer size: about 1 (both compressed); more when the layers are
# compressed harder than the squashfs (zstd -19 layers, gzip SIF).
SIF_FACTOR = 1.2
SPACE_MARGIN = 64 << 20


@dataclass(frozen=True)
class Squash:
    """How mksquashfs runs: compressor (never ``auto`` here), level, ``-mem`` and ``-processors``."""

    compression: str
    level: Optional[int]
    mem_mib: Optional[int] = None
    processors: Optional[int] = None


def build_and_publish(
    res: Resolution,
    *,
    backend: str,
    compression: str,
    level: Optional[int],
    exe: str,
    insecure: bool,
    progress: Optional[Progress],
    state_dir: Optional[Path] = None,
    mem_mib: Optional[int] = None,
    processors: Optional[int] = None,
) -> Hit:
    """Convert ``res.digest`` into the cache under its lock (see the module docstring).

    ``compression`` ``auto`` is decided here, for the build that runs
    (:func:`hpcbridge.images.readable.choose`).
    """
    cache = res.cache
    cache.ensure()
    cache.sweep()
    lock = cache.lock(res.digest)
    try:
        got = lock.acquire(
            done=lambda: not res.force and cache.lookup(res.digest, touch=False) is not None,
            on_wait=lambda info: _wait_notice(res.digest, info, progress),
        )
        if not got:
            hit = res.hit(res.digest)
            if hit is not None:
                return hit
            raise ImageError(f"conversion of {res.digest} vanished from the cache while waiting")
        from hpcbridge.images.readable import choose

        compression = choose(compression, exe, state_dir)
        squash = Squash(compression, level, mem_mib, processors)
        hex_ = hex_of(res.digest)
        part = cache.sif_dir / temp_name(f"{hex_}.sif")
        workdir = cache.tmp_dir / temp_name(f"convert-{hex_[:16]}")
        try:
            workdir.mkdir(mode=0o700)
            started = time.time()
            if backend == "native":
                _native(res, part, workdir, squash, progress)
            else:
                _apptainer(res, part, workdir, squash, exe, insecure, progress)
            sha = file_sha256(part)
            cache.publish_mode(part, 0o755)
            final = cache.sif_path(res.digest)
            os.replace(part, final)
            record = {
                "digest": res.digest,
                "sif": final.name,
                "size": final.stat().st_size,
                "sif_sha256": sha,
                "source_ref": res.canonical,
                "refs": [res.canonical],
                "platform": res.platform_text,
                "backend": backend,
                "compression": compression,
                "level": effective_level(compression, level),
                "config_digest": res.image.config_digest if res.image is not None else None,
                **_image_facts(res),
                "created": time.time(),
                "seconds": round(time.time() - started, 3),
            }
            cache.write_record(res.digest, record)
            return Hit(res.digest, final, record, cached=False)
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        lock.release()
        res.close()


def _wait_notice(digest: str, info: Optional[LockInfo], progress: Optional[Progress]) -> None:
    log.info(
        "waiting for %s to finish converting %s",
        info.describe() if info else "another process",
        digest,
    )
    if progress is not None:
        progress("wait", 0, 0)


def _image_facts(res: Resolution) -> dict[str, Any]:
    """What later commands want to know without opening the SIF (WorkingDir, labels)."""
    try:
        if res.image is not None:
            config = res.image.config
        elif res.client is not None and res.manifest is not None:
            from hpcbridge.images.fetch.manifest import parse_manifest

            assert isinstance(res.parsed, RegistryRef)
            desc = parse_manifest(res.manifest.data, res.digest).config
            config = json.loads(res.client.get_blob_bytes(res.parsed.repository, desc.digest))
        else:
            return {}
    except (ImageError, ValueError, OSError) as exc:
        log.debug("no image facts for %s: %s", res.digest, exc)
        return {}
    inner = config.get("config") if isinstance(config, dict) else None
    inner = inner if isinstance(inner, dict) else {}
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    return {
        "workdir": str(inner.get("WorkingDir") or "") or None,
        "labels": {str(k): str(v) for k, v in (labels or {}).items()},
        "config_digest": res.image.config_digest
        if res.image is not None
        else _config_digest(res.manifest),
    }


def _config_digest(manifest: Any) -> Optional[str]:
    if manifest is None:
        return None
    try:
        return str(json.loads(manifest.data)["config"]["digest"])
    except (ValueError, KeyError, TypeError):
        return None


def _load_image(res: Resolution, report: Reporter) -> Image:
    """The image to build from: the local one, or the registry's with layers downloading.

    Free space for the blobs and the SIF is checked before any download starts.
    """
    if res.image is not None:
        _check_space(res, res.image.stored_size, 0)
        return res.image
    from hpcbridge.images.fetch.manifest import parse_manifest
    from hpcbridge.images.fetch.registry import blob_bytes_missing, load_registry

    assert isinstance(res.parsed, RegistryRef)
    assert res.client is not None and res.manifest is not None
    layers = parse_manifest(res.manifest.data, res.digest).layers
    stored = sum(max(d.size, 0) for d in layers)
    _check_space(res, stored, blob_bytes_missing(res.cache.blob_dir, layers))
    done = [0]
    guard = threading.Lock()

    def on_bytes(index: int, digest: str, n: int, size: int) -> None:
        report.layer_bytes("download", index, digest, n, size)
        with guard:
            done[0] += n
            report.stage("download", done[0], stored)

    def check(config: bytes) -> None:  # before any layer downloads
        try:
            data = json.loads(config)
        except ValueError as exc:
            raise ImageError(
                f"{res.ref}: the image config is not JSON", "the image is malformed"
            ) from exc
        if not isinstance(data, dict):
            raise ImageError(
                f"{res.ref}: the image config is not a JSON object", "the image is malformed"
            )
        check_platform(data, res.platform, res.ref)

    res.image = load_registry(
        res.client,
        res.parsed,
        res.manifest,
        res.cache.blob_dir,
        on_bytes=on_bytes if report else None,
        check_config=check,
    )
    return res.image


def _check_space(res: Resolution, stored: int, blobs: int) -> None:
    """Refuse to start unless the cache holds ``blobs`` more bytes and the SIF, and the
    tmp dir an extracted root filesystem when mksquashfs cannot read tar streams."""
    from hpcbridge.images.sif.squash import find_mksquashfs, supports_tar
    from hpcbridge.images.space import check_space

    # With mksquashfs -tar nothing is extracted; otherwise the rootfs needs room.
    rootfs = 0 if supports_tar(find_mksquashfs()) else int(stored * EXPANSION)
    needed = blobs + int(stored * SIF_FACTOR) + SPACE_MARGIN
    check_space(res.cache, rootfs + SPACE_MARGIN, needed)


def _native(
    res: Resolution, part: Path, workdir: Path, squash: Squash, progress: Optional[Progress]
) -> None:
    from hpcbridge.images.sif.native import build_sif
    from hpcbridge.images.sif.squash import DEFAULT_MEM_MIB, default_processors

    image = _load_image(res, Reporter(progress))
    check_platform(image.config, res.platform, res.ref)
    build_sif(
        image.layers,
        image.config,
        # The SIF records the image ID (config digest): identical for every source
        # form of one image, unlike the manifest digest (see docs/convert.md).
        manifest_digest=image.config_digest,
        source_ref=image.config_digest,
        out=part,
        workdir=workdir,
        compression=squash.compression,
        level=squash.level,
        processors=squash.processors or default_processors(),
        mem_mib=squash.mem_mib or DEFAULT_MEM_MIB,
        progress=progress,
    )


def _apptainer(
    res: Resolution,
    part: Path,
    workdir: Path,
    squash: Squash,
    exe: str,
    insecure: bool,
    progress: Optional[Progress],
) -> None:
    from hpcbridge.images.sif import apptainer

    registry = isinstance(res.parsed, RegistryRef)
    no_https = isinstance(res.parsed, RegistryRef) and (insecure or res.parsed.is_loopback)
    if progress is not None:
        progress("apptainer", 0, 1)
    apptainer.build(
        res.parsed,
        res.digest if registry else None,
        part,
        tmp_dir=workdir,
        exe=exe,
        no_https=no_https,
        platform=res.platform,
        compression=squash.compression,
        level=squash.level,
    )
    if progress is not None:
        progress("apptainer", 1, 1)
