"""Registry v2 client: resolve tags, fetch manifests, download verified blobs.

:func:`load_registry` turns a fetched manifest into an
:class:`~hpcbridge.images.fetch.image.Image` whose layers download in the
background, in order.

Plain http is used only for loopback registries or when the caller says the
registry is insecure.  Every manifest fetched by digest and every blob is
checked against its sha256 while it streams; a blob is renamed into the blob
cache only once verified, and an interrupted download resumes with an HTTP
Range request (:mod:`.download`).  Layers download on :data:`DOWNLOADS` threads
at most, in layer order.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from hpcbridge.errors import ImageError
from hpcbridge.fsutil import atomic_write_bytes
from hpcbridge.images.fetch.auth import Authenticator, find_credentials
from hpcbridge.images.fetch.download import DigestMismatch, fetch_blob, partial_paths
from hpcbridge.images.fetch.image import Image, RemoteLayer
from hpcbridge.images.fetch.manifest import ACCEPT, Descriptor, parse_manifest, sha256_digest
from hpcbridge.images.fetch.transport import Response, Transport
from hpcbridge.images.protocols import Layer
from hpcbridge.images.refs import RegistryRef, is_loopback_host

log = logging.getLogger(__name__)

#: Blobs downloaded at once.
DOWNLOADS = 3

__all__ = ["DOWNLOADS", "DigestMismatch", "FetchedManifest", "RegistryClient", "load_registry"]


@dataclass(frozen=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


class RegistryClient:
    """One client per registry host; ``repository`` is passed per call."""

    def __init__(
        self,
        registry: str,
        *,
        api_host: Optional[str] = None,
        insecure: bool = False,
        transport: Optional[Transport] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.registry = registry
        self.api_host = api_host or registry
        self.scheme = "http" if insecure or is_loopback_host(self.api_host) else "https"
        self.transport = transport or Transport()
        self.auth = Authenticator(registry, find_credentials(registry, environ), self.transport)

    @classmethod
    def for_ref(cls, ref: RegistryRef, **kwargs: object) -> RegistryClient:
        return cls(ref.registry, api_host=ref.api_host, **kwargs)  # type: ignore[arg-type]

    def url(self, repository: str, kind: str, reference: str) -> str:
        return f"{self.scheme}://{self.api_host}/v2/{repository}/{kind}/{reference}"

    def _send(
        self,
        method: str,
        url: str,
        repository: str,
        accept: Optional[str],
        extra: Optional[Mapping[str, str]] = None,
    ) -> Response:
        scope = f"repository:{repository}:pull"
        headers = {"Accept": accept} if accept else {}
        headers.update(extra or {})
        known = self.auth.header_for(scope)
        if known:
            headers["Authorization"] = known
        resp = self.transport.request(method, url, headers)
        if resp.status == 401:
            challenge = resp.header("WWW-Authenticate")
            resp.read()
            resp.close()
            if not challenge:
                raise self.auth.denied(repository)
            headers["Authorization"] = self.auth.answer(challenge, scope)
            resp = self.transport.request(method, url, headers)
            if resp.status == 401:
                resp.read()
                resp.close()
                raise self.auth.denied(repository)
        if resp.status == 403:
            resp.read()
            resp.close()
            raise self.auth.denied(repository)
        return resp

    def _error(self, resp: Response, what: str) -> ImageError:
        body = b""
        with contextlib.suppress(OSError, http.client.HTTPException):
            body = resp.read(4096) if resp.status >= 400 else b""
        resp.close()
        if resp.status == 404:
            return ImageError(
                f"{what} not found on {self.registry}",
                "check the repository name and tag; `skopeo list-tags docker://REPO` lists the tags",
            )
        detail = body.decode("utf-8", "replace").strip().splitlines()[0:1]
        return ImageError(
            f"registry {self.registry} answered HTTP {resp.status} for {what}"
            + (f": {detail[0][:200]}" if detail else "")
        )

    def head_manifest(self, repository: str, reference: str) -> Optional[tuple[str, str]]:
        """One HEAD: (digest, media type), or None when the registry gives no digest."""
        resp = self._send("HEAD", self.url(repository, "manifests", reference), repository, ACCEPT)
        if resp.status != 200:
            raise self._error(resp, f"image {self.registry}/{repository}:{reference}")
        resp.read()
        resp.close()
        digest = resp.header("Docker-Content-Digest")
        media = resp.header("Content-Type").split(";")[0].strip()
        if not digest.startswith("sha256:") or len(digest) != 71:
            return None
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(
                f"registry {self.registry} answered digest {digest} for {reference}"
            )
        return digest, media

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """GET a manifest or index; verify it when fetched by digest."""
        resp = self._send("GET", self.url(repository, "manifests", reference), repository, ACCEPT)
        if resp.status != 200:
            raise self._error(resp, f"image {self.registry}/{repository}:{reference}")
        data = resp.content(8 * 1024 * 1024)
        media = resp.header("Content-Type").split(";")[0].strip()
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(
                f"manifest {reference} from {self.registry} hashes to {digest}",
                "the registry or a proxy altered it; try again later",
            )
        header_digest = resp.header("Docker-Content-Digest")
        if header_digest and header_digest != digest:
            log.debug("Docker-Content-Digest %s differs from body %s", header_digest, digest)
        return FetchedManifest(data, media, digest)

    def get_blob_bytes(self, repository: str, digest: str, limit: int = 16 * 1024 * 1024) -> bytes:
        """A small blob (an image config) in memory, verified."""
        resp = self._send("GET", self.url(repository, "blobs", digest), repository, None)
        if resp.status != 200:
            raise self._error(resp, f"blob {digest} of {repository}")
        data = resp.content(limit)
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"blob {digest} of {repository} hashes to {sha256_digest(data)}")
        return data

    def blob_response(self, repository: str, digest: str, offset: int = 0) -> Optional[Response]:
        """GET a blob from byte ``offset`` (a Range request when > 0): a 200 or 206 answer
        to read, or None for 416 (nothing after ``offset``)."""
        extra = {"Range": f"bytes={offset}-"} if offset else None
        resp = self._send("GET", self.url(repository, "blobs", digest), repository, None, extra)
        if resp.status == 416 and offset:
            resp.read()
            resp.close()
            return None
        if resp.status not in (200, 206):
            raise self._error(resp, f"blob {digest} of {repository}")
        return resp

    def download_blob(
        self,
        repository: str,
        digest: str,
        dest: Path,
        *,
        size: int = -1,
        on_bytes: Optional[Callable[[int], None]] = None,
    ) -> Path:
        """Stream a blob to ``dest``: verified, resumable (:mod:`.download`). Returns ``dest``."""
        if dest.exists():
            return dest
        return fetch_blob(self, repository, digest, dest, size, on_bytes)


def prefetcher(
    workers: int = DOWNLOADS,
) -> tuple[Callable[[Callable[[], Path]], Callable[[], Path]], Callable[[], None]]:
    """Run blob downloads in the background; return (schedule, shutdown)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpcbridge-fetch")

    def schedule(fn: Callable[[], Path]) -> Callable[[], Path]:
        fut: Future[Path] = pool.submit(fn)
        return fut.result

    def shutdown() -> None:
        pool.shutdown(wait=True, cancel_futures=True)

    return schedule, shutdown


def blob_bytes_missing(blob_dir: Path, layers: Sequence[Descriptor]) -> int:
    """Bytes still to download for ``layers`` (blobs not in the cache, minus partial files)."""
    missing = 0
    for desc in layers:
        if (blob_dir / desc.digest.split(":", 1)[1]).exists():
            continue
        have = 0
        with contextlib.suppress(OSError):
            have = partial_paths(blob_dir, desc.digest)[0].stat().st_size
        missing += max(desc.size - have, 0)
    return missing


def _layer_hook(
    on_bytes: Callable[[int, str, int, int], None], index: int, desc: Descriptor
) -> Callable[[int], None]:
    def heard(n: int) -> None:
        on_bytes(index, desc.digest, n, desc.size)

    return heard


def load_registry(
    client: RegistryClient,
    ref: RegistryRef,
    manifest: FetchedManifest,
    blob_dir: Path,
    *,
    on_bytes: Optional[Callable[[int, str, int, int], None]] = None,
    workers: int = DOWNLOADS,
    check_config: Optional[Callable[[bytes], None]] = None,
) -> Image:
    """An image from a registry manifest; layers download in the background, in order.

    ``on_bytes(index, digest, n, size)`` hears every chunk of layer ``index``
    (resumed bytes included, once, when a download resumes).  ``check_config``
    sees the config blob before any layer download starts (and may raise: a
    refused image downloads nothing but its config).
    """
    where = f"{ref.name}@{manifest.digest}"
    parsed = parse_manifest(manifest.data, where)
    repo = ref.repository
    config_path = blob_dir / parsed.config.digest.split(":", 1)[1]
    if config_path.is_file():
        config = config_path.read_bytes()
        if sha256_digest(config) != parsed.config.digest:
            config_path.unlink(missing_ok=True)
            config = client.get_blob_bytes(repo, parsed.config.digest)
    else:
        config = client.get_blob_bytes(repo, parsed.config.digest)
    if check_config is not None:
        check_config(config)
    if not config_path.is_file():
        atomic_write_bytes(config_path, config)
    schedule, shutdown = prefetcher(workers)
    layers: list[Layer] = []
    for index, desc in enumerate(parsed.layers):
        dest = blob_dir / desc.digest.split(":", 1)[1]
        heard = None if on_bytes is None else _layer_hook(on_bytes, index, desc)

        def fetch(
            desc: Descriptor = desc,
            dest: Path = dest,
            heard: Optional[Callable[[int], None]] = heard,
        ) -> Path:
            return client.download_blob(repo, desc.digest, dest, size=desc.size, on_bytes=heard)

        layers.append(RemoteLayer(desc.digest, desc.media_type, desc.size, schedule(fetch)))
    return Image(manifest.digest, parsed.config.digest, config, layers, str(ref), [shutdown])
