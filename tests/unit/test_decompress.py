"""The threaded decompressor hands out every byte exactly once, then b""."""

from __future__ import annotations

import gzip
import os

import pytest
import zstandard

from hpcbridge.errors import ImageError
from hpcbridge.images.layers.decompress import open_decompressed
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


def _inflaters() -> list[str]:
    names = ["zlib"]
    try:
        import isal  # noqa: F401
    except ImportError:
        pass
    else:
        names.append("isal")
    return names


@pytest.mark.parametrize("inflater", _inflaters())
@pytest.mark.parametrize("chunk", [1, 4096, 1 << 20, -1])
def test_gzip_members_padding_and_trailing_data_with_each_inflater(
    inflater: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    from hpcbridge.images.layers import decompress

    if inflater == "isal":
        from isal import isal_zlib

        monkeypatch.setattr(decompress, "_inflater", lambda: isal_zlib.decompressobj(31))
    else:
        monkeypatch.setattr(decompress, "_inflater", lambda: zlib.decompressobj(31))
    a, b = _payload(2_500_001), _payload(70_000)
    blob = gzip.compress(a) + bytes(1000) + gzip.compress(b) + bytes(3) + b"junk after the end"
    reader = open_decompressed(Blob(blob, GZ))
    try:
        parts = []
        while block := reader.read(chunk):
            parts.append(block)
        assert b"".join(parts) == a + b
    finally:
        reader.close()
    bad = bytearray(gzip.compress(a))
    bad[len(bad) // 2 : len(bad) // 2 + 64] = b"\xff" * 64
    reader = open_decompressed(Blob(bytes(bad), GZ))
    try:
        with pytest.raises(ImageError, match=r"corrupt|ends early"):
            while reader.read(1 << 20):
                pass
    finally:
        reader.close()
