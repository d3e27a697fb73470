"""Resolving a reference: its manifest digest for the platform, then a cache hit or a miss.

The warm path is cheap on purpose: one HEAD request for a tag (none for a
digest reference or ``--offline``) and a ``stat`` of ``<cache>/sif/<hex>.sif``.
Tag and index resolutions are remembered in the cache (``refs/``), so an
offline run or an unreachable registry can still find a converted tag.  On a
miss, the :class:`Resolution` keeps what building needs (the registry client
and manifest, or the opened local image) for :mod:`hpcbridge.images.publish`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import Cache
from hpcbridge.images.refs import ArchiveRef, ImageRef, Platform, RegistryRef

if TYPE_CHECKING:
    from hpcbridge.images.fetch.image import Image
    from hpcbridge.images.fetch.registry import FetchedManifest, RegistryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """A published SIF and its cache record; ``cached``: no conversion ran in this call."""

    digest: str
    path: Path
    record: dict[str, Any]
    cached: bool = True


class Resolution:
    """One reference being resolved against one cache (see the module docstring)."""

    def __init__(
        self, ref: str, parsed: ImageRef, cache: Cache, platform: Platform, force: bool
    ) -> None:
        self.ref = ref
        self.parsed = parsed
        self.canonical = canonical_ref(parsed)
        self.cache = cache
        self.platform = platform
        self.platform_text = "/".join(p for p in platform if p)
        self.force = force
        self.digest = ""
        self.image: Optional[Image] = None  # local forms: opened while resolving
        self.client: Optional[RegistryClient] = None
        self.manifest: Optional[FetchedManifest] = None

    def hit(self, digest: str) -> Optional[Hit]:
        """The published SIF of ``digest`` (never with ``force``)."""
        if self.force:
            return None
        path = self.cache.lookup(digest)
        if path is None:
            return None
        return Hit(digest, path, self.cache.ensure_record(digest, source_ref=self.canonical))

    def _known(self, key: str) -> Optional[str]:
        res = self.cache.load_resolution(key)
        return str(res["digest"]) if res else None

    def from_registry(self, ref: RegistryRef, *, offline: bool, insecure: bool) -> Optional[Hit]:
        """Resolve a registry reference; a hit, or None with ``digest`` and ``manifest`` set."""
        tag_key_ = tag_key(ref, self.platform_text)
        if ref.digest:
            candidates = [ref.digest, self._known(index_key(ref, ref.digest, self.platform_text))]
        elif offline:
            candidates = [self._known(tag_key_)]
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
        if not ref.digest and (insecure or ref.is_loopback):
            # Plain http: one HEAD on a bare socket first; a cached tag needs nothing more.
            from hpcbridge.images.fetch.head import plain_head

            quick = plain_head(ref.api_host, ref.repository, ref.reference)
            if quick is not None and (hit := self._hit_of_top(ref, quick[0], tag_key_)):
                return hit
        # Imported here: a warm digest or local reference never loads the HTTP client.
        from hpcbridge.images.fetch.registry import RegistryClient
        from hpcbridge.images.fetch.transport import TransportError

        self.client = RegistryClient.for_ref(ref, insecure=insecure)
        top = ref.digest
        if top is None:
            try:
                head = self.client.head_manifest(ref.repository, ref.reference)
            except TransportError:
                # Registry unreachable: fall back to the last resolution if it is cached.
                known = self._known(tag_key_)
                hit = self.hit(known) if known else None
                if hit is None:
                    raise
                log.warning("registry unreachable; using the cached %s for %s", known, self.ref)
                return hit
            if head is not None:
                top = head[0]
                if hit := self._hit_of_top(ref, top, tag_key_):
                    return hit
        self.manifest = self._platform_manifest(ref, top or ref.reference)
        self.digest = self.manifest.digest
        self.cache.ensure()
        if top and top != self.digest:
            self.cache.save_resolution(
                index_key(ref, top, self.platform_text), self.digest, index=top
            )
        if tag_key_:
            self.cache.save_resolution(tag_key_, self.digest, ref=str(ref), index=top)
        return self.hit(self.digest)

    def _hit_of_top(self, ref: RegistryRef, top: str, tag_key_: str) -> Optional[Hit]:
        """The cached SIF of what the tag names now (``top``: its manifest or index digest)."""
        known = self._known(index_key(ref, top, self.platform_text)) or top
        hit = self.hit(known)
        if hit is not None and self._known(tag_key_) != known:
            self.cache.save_resolution(tag_key_, known, ref=str(ref), index=top)
        return hit

    def _platform_manifest(self, ref: RegistryRef, reference: str) -> FetchedManifest:
        from hpcbridge.images.fetch.manifest import kind_of, parse_index, select_platform

        assert self.client is not None
        fetched = self.client.get_manifest(ref.repository, reference)
        for _ in range(3):
            where = f"{ref.name}@{fetched.digest}"
            if kind_of(fetched.data, fetched.media_type, where) == "manifest":
                return fetched
            chosen = select_platform(parse_index(fetched.data, where), self.platform, str(ref))
            fetched = self.client.get_manifest(ref.repository, chosen.digest)
        raise ImageError(f"{ref}: image indexes nested too deeply")

    def from_local(self, ref: ArchiveRef) -> Optional[Hit]:
        """Open a local image (metadata only); a hit, or None with ``digest`` and ``image`` set."""
        from hpcbridge.images.fetch.local import archive_compression, load_local

        if Path(ref.path).is_file() and archive_compression(Path(ref.path)) != "none":
            # decompressed into scratch space; a refused archive leaves no cache behind
            from hpcbridge.fsutil import undo_new_dirs

            with undo_new_dirs(self.cache.root, self.cache.tmp_dir):
                self.cache.ensure()
                self.image = load_local(ref, self.platform, self.cache.tmp_dir)
        else:
            self.image = load_local(ref, self.platform)
        self.digest = self.image.manifest_digest
        hit = self.hit(self.digest)
        if hit is not None:
            self.image.close()
        return hit

    def close(self) -> None:
        """Let go of the opened image and the registry connections."""
        if self.image is not None:
            self.image.close()
        if self.client is not None:
            self.client.transport.close()


def tag_key(ref: RegistryRef, platform_text: str) -> str:
    """The ``refs/`` key of a tag's resolution to a platform manifest (convert, preview)."""
    return f"{ref.name}:{ref.tag}|{platform_text}" if ref.tag and not ref.digest else ""


def index_key(ref: RegistryRef, top: str, platform_text: str) -> str:
    """The ``refs/`` key of an index (or manifest) digest's platform manifest."""
    return f"{ref.name}@{top}|{platform_text}"


def check_platform(config: dict[str, Any], platform: Platform, ref: str) -> None:
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
