"""One conversion: resolve a reference to a digest, hit the cache or build under its lock.

Used by :func:`hpcbridge.images.convert.convert`; see that module's docstring.
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
from hpcbridge.images.cache import Cache, file_sha256, hex_of, temp_name
from hpcbridge.images.refs import ArchiveRef, ImageRef, RegistryRef

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
# Root filesystem size / stored (compressed) layer size, for the free-space estimate.
EXPANSION = 3.0
SPACE_MARGIN = 64 << 20


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


class Conversion:
    def __init__(
        self,
        ref: str,
        parsed: ImageRef,
        cache: Cache,
        platform: tuple[str, str, Optional[str]],
        force: bool,
        progress: Optional[Progress],
    ) -> None:
        self.ref = ref
        self.canonical = canonical_ref(parsed)
        self.parsed = parsed
        self.cache = cache
        self.platform = platform
        self.platform_text = "/".join(p for p in platform if p)
        self.force = force
        self.progress = progress
        self.digest = ""
        self.image: Any = None  # sources.Image, loaded lazily
        self.client: Any = None  # registry.RegistryClient
        self.manifest: Any = None  # registry.FetchedManifest

    def hit(self, digest: str) -> Optional[ConvertResult]:
        if self.force:
            return None
        path = self.cache.lookup(digest)
        if path is None:
            return None
        record = self.cache.ensure_record(digest, source_ref=self.canonical)
        return ConvertResult(
            self.ref,
            digest,
            path,
            str(record["sif_sha256"]),
            True,
            workdir=record.get("workdir"),
            labels=record.get("labels"),
        )

    def _known(self, key: str) -> Optional[str]:
        res = self.cache.load_resolution(key)
        return str(res["digest"]) if res else None

    def from_registry(
        self, ref: RegistryRef, *, offline: bool, insecure: bool
    ) -> Optional[ConvertResult]:
        tag_key = f"{ref.name}:{ref.tag}|{self.platform_text}" if ref.tag and not ref.digest else ""
        if ref.digest:
            candidates = [ref.digest, self._known(f"{ref.name}@{ref.digest}|{self.platform_text}")]
        elif offline:
            candidates = [self._known(tag_key)]
        else:
            candidates = []
        for digest in candidates:
            if digest and (hit := self.hit(digest)):
                return hit
        if offline:
            raise ImageError(
                f"{self.ref} is not in the cache at {self.cache.root}",
                "run the same convert once without --offline (where the registry is reachable)",
            )
        from hpcbridge.images.fetch.registry import RegistryClient
        from hpcbridge.images.fetch.transport import TransportError

        self.client = RegistryClient.for_ref(ref, insecure=insecure)
        top = ref.digest
        if top is None:
            try:
                head = self.client.head_manifest(ref.repository, ref.reference)
            except TransportError:
                # Registry unreachable: fall back to the last resolution if it is cached.
                known = self._known(tag_key)
                hit = self.hit(known) if known else None
                if hit is None:
                    raise
                log.warning("registry unreachable; using the cached %s for %s", known, self.ref)
                return hit
            if head is not None:
                top = head[0]
                known = self._known(f"{ref.name}@{top}|{self.platform_text}") or top
                if hit := self.hit(known):
                    if self._known(tag_key) != known:
                        self.cache.save_resolution(tag_key, known, ref=str(ref), index=top)
                    return hit
        self.manifest = self._platform_manifest(ref, top or ref.reference)
        self.digest = self.manifest.digest
        self.cache.ensure()
        if top and top != self.digest:
            self.cache.save_resolution(
                f"{ref.name}@{top}|{self.platform_text}", self.digest, index=top
            )
        if tag_key:
            self.cache.save_resolution(tag_key, self.digest, ref=str(ref), index=top)
        return self.hit(self.digest)

    def _platform_manifest(self, ref: RegistryRef, reference: str) -> Any:
        from hpcbridge.images.fetch.manifest import kind_of, parse_index, select_platform

        fetched = self.client.get_manifest(ref.repository, reference)
        for _ in range(3):
            where = f"{ref.name}@{fetched.digest}"
            if kind_of(fetched.data, fetched.media_type, where) == "manifest":
                return fetched
            chosen = select_platform(parse_index(fetched.data, where), self.platform, str(ref))
            fetched = self.client.get_manifest(ref.repository, chosen.digest)
        raise ImageError(f"{ref}: image indexes nested too deeply")

    def from_local(self, ref: ArchiveRef) -> Optional[ConvertResult]:
        from hpcbridge.images.fetch.sources import load_local

        scratch = None
        if Path(ref.path).is_file() and _compressed(Path(ref.path)):
            self.cache.ensure()
            scratch = self.cache.tmp_dir
        self.image = load_local(ref, self.platform, scratch)
        self.digest = self.image.manifest_digest
        hit = self.hit(self.digest)
        if hit is not None:
            self.image.close()
        return hit

    def _wait_notice(self, info: Any) -> None:
        log.info(
            "waiting for %s to finish converting %s",
            info.describe() if info else "another process",
            self.digest,
        )
        if self.progress is not None:
            self.progress("wait", 0, 0)

    def build(
        self, backend: str, compression: str, level: int, exe: str, insecure: bool
    ) -> ConvertResult:
        cache = self.cache
        cache.ensure()
        cache.sweep()
        lock = cache.lock(self.digest)
        try:
            got = lock.acquire(
                done=lambda: not self.force and cache.lookup(self.digest, touch=False) is not None,
                on_wait=self._wait_notice,
            )
            if not got:
                hit = self.hit(self.digest)
                if hit is not None:
                    return hit
                raise ImageError(
                    f"conversion of {self.digest} vanished from the cache while waiting"
                )
            hex_ = hex_of(self.digest)
            part = cache.sif_dir / temp_name(f"{hex_}.sif")
            workdir = cache.tmp_dir / temp_name(f"convert-{hex_[:16]}")
            try:
                workdir.mkdir(mode=0o700)
                started = time.time()
                if backend == "native":
                    self._native(part, workdir, compression, level)
                else:
                    self._apptainer(part, workdir, compression, level, exe, insecure)
                sha = file_sha256(part)
                cache.publish_mode(part, 0o755)
                final = cache.sif_path(self.digest)
                os.replace(part, final)
                record = {
                    "digest": self.digest,
                    "sif": final.name,
                    "size": final.stat().st_size,
                    "sif_sha256": sha,
                    "source_ref": self.canonical,
                    "refs": [self.canonical],
                    "platform": self.platform_text,
                    "backend": backend,
                    "compression": compression,
                    "level": level,
                    "config_digest": getattr(self.image, "config_digest", None),
                    **self._image_facts(),
                    "created": time.time(),
                    "seconds": round(time.time() - started, 3),
                }
                cache.write_record(self.digest, record)
                return ConvertResult(
                    self.ref,
                    self.digest,
                    final,
                    sha,
                    False,
                    workdir=record.get("workdir"),
                    labels=record.get("labels"),
                )
            finally:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                shutil.rmtree(workdir, ignore_errors=True)
        finally:
            lock.release()
            if self.image is not None:
                self.image.close()
            if self.client is not None:
                self.client.transport.close()

    def _image_facts(self) -> dict[str, Any]:
        """What later commands want to know without opening the SIF (WorkingDir, labels)."""
        try:
            if self.image is not None:
                config = self.image.config
            elif self.client is not None and self.manifest is not None:
                from hpcbridge.images.fetch.manifest import parse_manifest

                assert isinstance(self.parsed, RegistryRef)
                desc = parse_manifest(self.manifest.data, self.digest).config
                config = json.loads(self.client.get_blob_bytes(self.parsed.repository, desc.digest))
            else:
                return {}
        except (ImageError, ValueError, OSError) as exc:
            log.debug("no image facts for %s: %s", self.digest, exc)
            return {}
        inner = config.get("config") if isinstance(config, dict) else None
        inner = inner if isinstance(inner, dict) else {}
        labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
        return {
            "workdir": str(inner.get("WorkingDir") or "") or None,
            "labels": {str(k): str(v) for k, v in (labels or {}).items()},
            "config_digest": getattr(self.image, "config_digest", None)
            or parse_config_digest(self.manifest),
        }

    def _load_image(self) -> Any:
        if self.image is None:
            from hpcbridge.images.fetch.sources import load_registry

            assert isinstance(self.parsed, RegistryRef)
            done = [0]
            guard = threading.Lock()

            def on_bytes(n: int) -> None:
                with guard:
                    done[0] += n
                    if self.progress is not None:
                        total = self.image.stored_size if self.image is not None else 0
                        self.progress("download", done[0], total)

            self.image = load_registry(
                self.client, self.parsed, self.manifest, self.cache.blob_dir, on_bytes=on_bytes
            )
        return self.image

    def _check_space(self, image: Any, cache_factor: float) -> None:
        from hpcbridge.images.sif.squash import find_mksquashfs, supports_tar

        stored = int(image.stored_size)
        # With mksquashfs -tar nothing is extracted; otherwise the rootfs needs room.
        rootfs = 0 if supports_tar(find_mksquashfs()) else int(stored * EXPANSION)
        self.cache.check_space(rootfs + SPACE_MARGIN, int(stored * cache_factor) + SPACE_MARGIN)

    def _native(self, part: Path, workdir: Path, compression: str, level: int) -> None:
        from hpcbridge.images.sif.native import build_sif

        image = self._load_image()
        check_platform(image.config, self.platform, self.ref)
        self._check_space(image, 2.0 if isinstance(self.parsed, RegistryRef) else 1.0)
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
            progress=self.progress,
        )

    def _apptainer(
        self, part: Path, workdir: Path, compression: str, level: int, exe: str, insecure: bool
    ) -> None:
        from hpcbridge.images.sif import apptainer as backend_apptainer

        no_https = isinstance(self.parsed, RegistryRef) and (insecure or self.parsed.is_loopback)
        if self.progress is not None:
            self.progress("apptainer", 0, 1)
        backend_apptainer.build(
            self.parsed,
            self.digest if isinstance(self.parsed, RegistryRef) else None,
            part,
            tmp_dir=workdir,
            exe=exe,
            no_https=no_https,
            platform=self.platform,
            compression=compression,
            level=level,
        )
        if self.progress is not None:
            self.progress("apptainer", 1, 1)


def parse_config_digest(manifest: Any) -> Optional[str]:
    if manifest is None:
        return None
    try:
        obj = json.loads(manifest.data)
        return str(obj["config"]["digest"])
    except (ValueError, KeyError, TypeError):
        return None


def check_platform(
    config: dict[str, Any], platform: tuple[str, str, Optional[str]], ref: str
) -> None:
    """A single-platform image must match the requested platform (pure)."""
    os_name, arch, variant = platform
    got_os, got_arch = config.get("os") or "linux", config.get("architecture") or arch
    got_variant = config.get("variant")
    if (got_os, got_arch) != (os_name, arch) or (
        variant and got_variant and variant != got_variant
    ):
        have = f"{got_os}/{got_arch}" + (f"/{got_variant}" if got_variant else "")
        want = "/".join(p for p in platform if p)
        raise ImageError(
            f"{ref} is a {have} image, not {want}",
            f"convert it with --platform {have} (it runs only on {got_arch} nodes)",
        )


def canonical_ref(parsed: ImageRef) -> str:
    """The reference as recorded in the cache: normalised, local paths absolute."""
    if isinstance(parsed, ArchiveRef):
        path = os.path.abspath(os.path.expanduser(parsed.path))
        return f"{parsed.kind}:{path}" + (f":{parsed.tag}" if parsed.tag else "")
    return str(parsed)


def _compressed(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4).startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zX"))
    except OSError:
        return False
