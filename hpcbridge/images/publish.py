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
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import file_sha256, hex_of, temp_name
from hpcbridge.images.fetch.image import Image
from hpcbridge.images.lock import LockInfo
from hpcbridge.images.refs import RegistryRef
from hpcbridge.images.resolve import Hit, Resolution, check_platform
from hpcbridge.images.sif.compression import effective_level

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
# Root filesystem size / stored (compressed) layer size, for the free-space estimate.
EXPANSION = 3.0
SPACE_MARGIN = 64 << 20


def build_and_publish(
    res: Resolution,
    *,
    backend: str,
    compression: str,
    level: Optional[int],
    exe: str,
    insecure: bool,
    progress: Optional[Progress],
) -> Hit:
    """Convert ``res.digest`` into the cache under its lock (see the module docstring)."""
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
        hex_ = hex_of(res.digest)
        part = cache.sif_dir / temp_name(f"{hex_}.sif")
        workdir = cache.tmp_dir / temp_name(f"convert-{hex_[:16]}")
        try:
            workdir.mkdir(mode=0o700)
            started = time.time()
            if backend == "native":
                _native(res, part, workdir, compression, level, progress)
            else:
                _apptainer(res, part, workdir, compression, level, exe, insecure, progress)
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


def _load_image(res: Resolution, progress: Optional[Progress]) -> Image:
    """The image to build from: the local one, or the registry's with layers downloading."""
    if res.image is not None:
        return res.image
    from hpcbridge.images.fetch.registry import load_registry

    assert isinstance(res.parsed, RegistryRef)
    assert res.client is not None and res.manifest is not None
    done = [0]
    guard = threading.Lock()

    def on_bytes(n: int) -> None:
        with guard:
            done[0] += n
            if progress is not None:
                total = res.image.stored_size if res.image is not None else 0
                progress("download", done[0], total)

    res.image = load_registry(
        res.client, res.parsed, res.manifest, res.cache.blob_dir, on_bytes=on_bytes
    )
    return res.image


def _check_space(res: Resolution, image: Image, cache_factor: float) -> None:
    from hpcbridge.images.sif.squash import find_mksquashfs, supports_tar

    stored = int(image.stored_size)
    # With mksquashfs -tar nothing is extracted; otherwise the rootfs needs room.
    rootfs = 0 if supports_tar(find_mksquashfs()) else int(stored * EXPANSION)
    res.cache.check_space(rootfs + SPACE_MARGIN, int(stored * cache_factor) + SPACE_MARGIN)


def _native(
    res: Resolution,
    part: Path,
    workdir: Path,
    compression: str,
    level: Optional[int],
    progress: Optional[Progress],
) -> None:
    from hpcbridge.images.sif.native import build_sif

    image = _load_image(res, progress)
    check_platform(image.config, res.platform, res.ref)
    _check_space(res, image, 2.0 if isinstance(res.parsed, RegistryRef) else 1.0)
    build_sif(
        image.layers,
        image.config,
        # The SIF records the image ID (config digest): identical for every source
        # form of one image, unlike the manifest digest (see docs/convert.md).
        manifest_digest=image.config_digest,
        source_ref=image.config_digest,
        out=part,
        workdir=workdir,
        compression=compression,
        level=level,
        progress=progress,
    )


def _apptainer(
    res: Resolution,
    part: Path,
    workdir: Path,
    compression: str,
    level: Optional[int],
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
        compression=compression,
        level=level,
    )
    if progress is not None:
        progress("apptainer", 1, 1)
