"""What every image source yields: an :class:`Image` and its layer blobs.

An Image holds the manifest digest (the cache key), the image config (JSON)
and :class:`~hpcbridge.images.protocols.Layer` objects whose ``open()``
returns the stored, possibly compressed, blob.  Local blobs are checked against
their digest while they are read (:class:`VerifyingReader`); registry blobs are
verified when downloaded into the blob cache (:mod:`.registry`).  The local
forms are read by :mod:`.local`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hpcbridge.errors import ImageError
from hpcbridge.images.protocols import BinaryReader, Layer

_CHUNK = 1 << 20


class VerifyingReader:
    """Hashes what is read; at EOF (or on close, after draining) checks the digest."""

    def __init__(self, raw: BinaryReader, digest: str, remaining: int, where: str) -> None:
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

    def open(self) -> BinaryReader:
        fh = open(self.path, "rb")  # noqa: SIM115 - the caller closes the returned reader
        if self.offset:
            fh.seek(self.offset)
        if not self.verify:
            return fh
        return VerifyingReader(fh, self.digest, self.size, self.where or str(self.path))


@dataclass
class RemoteLayer:
    """A registry blob, downloaded (maybe in the background) into the blob cache."""

    digest: str
    media_type: str
    size: int
    fetch: Callable[[], Path]

    def open(self) -> BinaryReader:
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
