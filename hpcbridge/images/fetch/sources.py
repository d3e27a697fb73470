"""Image sources: registry, OCI layout directory, oci-archive, docker-archive.

Every source yields the same thing, an :class:`Image`: the manifest digest (the
cache key), the image config (JSON), and :class:`Layer` objects whose ``open()``
returns the stored, possibly compressed, blob.  Local blobs are checked against
their digest while they are read (:class:`VerifyingReader`); registry blobs are
verified when downloaded into the blob cache.

``docker-archive`` (``docker save``) stores no manifest; its manifest digest is
that of the canonical OCI manifest of the archive's config and uncompressed
layers (:func:`hpcbridge.images.fetch.manifest.canonical_manifest`).  The SIF itself
depends only on the config and the layer contents, so all four forms of the
same image give byte-identical SIFs (see docs/convert.md).  The local forms are
read by :mod:`hpcbridge.images.fetch.local`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Optional, Protocol

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.manifest import Descriptor, parse_manifest, sha256_digest
from hpcbridge.images.refs import ArchiveRef, RegistryRef

if TYPE_CHECKING:
    from hpcbridge.images.fetch.registry import FetchedManifest, RegistryClient

Platform = tuple[str, str, Optional[str]]
_CHUNK = 1 << 20


class Layer(Protocol):
    digest: str
    media_type: str
    size: int

    def open(self) -> IO[bytes]: ...


class VerifyingReader:
    """Hashes what is read; at EOF (or on close, after draining) checks the digest."""

    def __init__(self, raw: IO[bytes], digest: str, remaining: int, where: str) -> None:
        self._raw = raw
        self._digest = digest
        self._left = remaining  # -1: read to EOF
        self._hash = hashlib.sha256()
        self._where = where
        self._checked = False

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        got = "sha256:" + self._hash.hexdigest()
        if got != self._digest:
            raise ImageError(
                f"{self._where}: blob {self._digest} hashes to {got}",
                "the image file is corrupt or was modified; export it again",
            )

    def read(self, n: int = -1, /) -> bytes:
        if self._left == 0:
            self._check()
            return b""
        want = n if n >= 0 else _CHUNK * 16
        if self._left > 0:
            want = min(want, self._left)
        data = self._raw.read(want)
        if not data:
            if self._left > 0:
                raise ImageError(f"{self._where}: blob {self._digest} is truncated")
            self._check()
            return b""
        self._hash.update(data)
        if self._left > 0:
            self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            if not self._checked:
                while self.read(_CHUNK):
                    pass
        finally:
            self._raw.close()


@dataclass
class LocalLayer:
    """A blob in a file, possibly at an offset inside a tar archive."""

    digest: str
    media_type: str
    size: int
    path: Path
    offset: int = 0
    verify: bool = True
    where: str = ""

    def open(self) -> IO[bytes]:
        fh = open(self.path, "rb")  # noqa: SIM115 - the caller closes the returned reader
        if self.offset:
            fh.seek(self.offset)
        if not self.verify:
            return fh
        return VerifyingReader(fh, self.digest, self.size, self.where or str(self.path))  # type: ignore[return-value]


@dataclass
class RemoteLayer:
    """A registry blob, downloaded (maybe in the background) into the blob cache."""

    digest: str
    media_type: str
    size: int
    fetch: Callable[[], Path]

    def open(self) -> IO[bytes]:
        return open(self.fetch(), "rb")


@dataclass
class Image:
    manifest_digest: str
    config_digest: str
    config_bytes: bytes
    layers: Sequence[Layer]
    source_ref: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        obj = json.loads(self.config_bytes)
        if not isinstance(obj, dict):
            raise ImageError(f"{self.source_ref}: the image config is not a JSON object")
        return obj

    @property
    def stored_size(self) -> int:
        return sum(max(layer.size, 0) for layer in self.layers)

    def close(self) -> None:
        for closer in self.closers:
            closer()


def load_local(ref: ArchiveRef, platform: Platform, scratch: Optional[Path] = None) -> Image:
    """Open a docker-archive, oci or oci-archive reference (metadata only; cheap)."""
    from hpcbridge.images.fetch.local import load_local as load

    return load(ref, platform, scratch)


def prefetcher(
    workers: int = 3,
) -> tuple[Callable[[Callable[[], Path]], Callable[[], Path]], Callable[[], None]]:
    """Run blob downloads in the background; return (schedule, shutdown)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpcbridge-fetch")

    def schedule(fn: Callable[[], Path]) -> Callable[[], Path]:
        fut: Future[Path] = pool.submit(fn)
        return fut.result

    def shutdown() -> None:
        pool.shutdown(wait=True, cancel_futures=True)

    return schedule, shutdown


# --- registry ------------------------------------------------------------------------------


def load_registry(
    client: RegistryClient,
    ref: RegistryRef,
    manifest: FetchedManifest,
    blob_dir: Path,
    *,
    on_bytes: Optional[Callable[[int], None]] = None,
    workers: int = 3,
) -> Image:
    """An image from a registry manifest; layers download in the background, in order."""
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
    from hpcbridge.fsutil import atomic_write_bytes

    if not config_path.is_file():
        atomic_write_bytes(config_path, config)
    schedule, shutdown = prefetcher(workers)
    layers: list[Layer] = []
    for desc in parsed.layers:
        dest = blob_dir / desc.digest.split(":", 1)[1]

        def fetch(desc: Descriptor = desc, dest: Path = dest) -> Path:
            return client.download_blob(repo, desc.digest, dest, size=desc.size, on_bytes=on_bytes)

        layers.append(RemoteLayer(desc.digest, desc.media_type, desc.size, schedule(fetch)))
    return Image(manifest.digest, parsed.config.digest, config, layers, str(ref), [shutdown])
