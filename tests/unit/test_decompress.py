"""The threaded decompressor hands out every byte exactly once, then b""."""

from __future__ import annotations

import gzip
import os

import pytest
import zstandard

from hpcbridge.images.decompress import open_decompressed
from tests.unit.test_layers import GZ, TAR, ZST, Blob


def _payload(size: int) -> bytes:
    return os.urandom(size // 2) + bytes(size - size // 2)


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize(
    ("media_type", "pack"),
    [
        (GZ, gzip.compress),
        (ZST, lambda b: zstandard.ZstdCompressor().compress(b)),
        (TAR, lambda b: b),
    ],
)
@pytest.mark.parametrize("chunk", [1, 4096, 100_000, 1 << 20, -1])
def test_reads_to_eof_exactly_once(media_type: str, pack, chunk: int, threaded: bool) -> None:  # type: ignore[no-untyped-def]
    data = _payload(300_001)
    reader = open_decompressed(Blob(pack(data), media_type), threaded=threaded)
    try:
        parts = []
        while True:
            block = reader.read(chunk)
            if not block:
                break
            parts.append(block)
            assert len(parts) < 400_000, "reader never reached EOF"
        assert b"".join(parts) == data
        assert reader.read(chunk) == b""
        assert reader.read(1 << 20) == b""
    finally:
        reader.close()
