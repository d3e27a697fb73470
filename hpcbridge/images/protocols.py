"""The two shapes fetch/ hands to layers/: a byte stream and a stored layer blob (a leaf)."""

from __future__ import annotations

from typing import Protocol


class BinaryReader(Protocol):
    """A readable byte stream the reader closes."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class Layer(Protocol):
    """One stored layer blob (possibly compressed); ``open()`` returns its bytes as stored."""

    digest: str
    media_type: str
    size: int

    def open(self) -> BinaryReader: ...
