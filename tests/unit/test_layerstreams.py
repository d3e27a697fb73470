"""DecodedLayers: every layer's bytes exactly once per pass, the first pass within its byte budget."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
import zstandard

from hpcbridge import runner
from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.image import VerifyingReader
from hpcbridge.images.layers import decoded as layerstreams
from hpcbridge.images.layers.decoded import MIN_BUDGET, DecodedLayers
from hpcbridge.images.protocols import BinaryReader
from tests.unit.test_layers import GZ, TAR, ZST, Blob

MiB = 1 << 20


class CountingBlob(Blob):
    opens = 0

    def open(self):  # type: ignore[no-untyped-def]
        self.opens += 1
        return super().open()


def _payloads() -> list[bytes]:
    return [
        os.urandom(MiB) + bytes(2 * MiB + 12345),
        os.urandom(100_000) + bytes(MiB),
        b"",
        bytes(7),
    ]


def _blobs(payloads: list[bytes]) -> list[CountingBlob]:
    packs = [
        (GZ, gzip.compress),
        (ZST, lambda b: zstandard.ZstdCompressor().compress(b)),
        (TAR, lambda b: b),
        (GZ, gzip.compress),
    ]
    return [CountingBlob(pack(p), mt) for p, (mt, pack) in zip(payloads, packs)]


def _read_all(reader: BinaryReader, chunk: int) -> bytes:
    parts = []
    try:
        while True:
            block = reader.read(chunk)
            if not block:
                break
            parts.append(block)
        assert reader.read(chunk) == b""
    finally:
        reader.close()
    return b"".join(parts)


@pytest.mark.parametrize("budget", [0, MIN_BUDGET, 2 * MiB, 1 << 30])
@pytest.mark.parametrize("chunk", [1000, 64 << 10, 3 * MiB, -1])
def test_both_passes_give_every_byte(budget: int, chunk: int) -> None:
    payloads = _payloads()
    blobs = _blobs(payloads)
    with DecodedLayers(blobs, budget=budget) as dec:
        for i, p in enumerate(payloads):
            assert _read_all(dec.first(i), chunk) == p
        for i, p in enumerate(payloads):
            assert _read_all(dec.second(i), chunk) == p
        assert dec.peak <= dec.budget == max(budget, MIN_BUDGET)
    assert [b.opens for b in blobs] == [2, 2, 2, 2]  # nothing is kept between the passes


def test_the_budget_holds_with_many_layers_and_a_slow_reader() -> None:
    payloads = [os.urandom(3 * MiB) for _ in range(6)]
    blobs = [Blob(gzip.compress(p, 1), GZ) for p in payloads]
    with DecodedLayers(blobs, budget=MiB, ahead=5) as dec:
        for i, p in enumerate(payloads):
            reader = dec.first(i)
            got = []
            while block := reader.read(200_000):
                got.append(block)
                time.sleep(0.001)  # the threads ahead fill what they may meanwhile
            reader.close()
            assert b"".join(got) == p
        assert 0 < dec.peak <= MiB


def test_first_pass_may_stop_early_and_second_pass_skip_layers() -> None:
    payloads = _payloads()
    for budget in (0, 1 << 30):
        with DecodedLayers(_blobs(payloads), budget=budget) as dec:
            assert dec.first(0).read(10) == payloads[0][:10]
            assert _read_all(dec.second(0), MiB) == payloads[0]
        # leaving the block stopped every thread, even one waiting for budget


def test_closing_early_still_reads_a_local_blob_to_its_end_and_checks_it() -> None:
    data = gzip.compress(os.urandom(2 * MiB))

    class Local(Blob):
        def open(self):  # type: ignore[no-untyped-def]
            wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
            return VerifyingReader(io.BytesIO(self.data), wrong, len(self.data), "test")

    with DecodedLayers([Local(data, GZ)]) as dec:
        reader = dec.first(0)
        assert len(reader.read(1000)) == 1000
        with pytest.raises(ImageError, match="hashes to"):
            reader.close()


def test_close_returns_while_threads_wait_for_budget() -> None:
    blobs = [Blob(gzip.compress(os.urandom(4 * MiB), 1), GZ) for _ in range(4)]
    start = time.monotonic()
    with DecodedLayers(blobs, budget=MIN_BUDGET, ahead=3) as dec:
        reader = dec.first(0)
        reader.read(10)
        time.sleep(0.05)
    assert time.monotonic() - start < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("decode-")]


def test_a_corrupt_layer_is_an_image_error() -> None:
    good = gzip.compress(bytes(3 * MiB))
    bad = Blob(good[: len(good) // 2] + b"\xff" * 64 + good[len(good) // 2 :], GZ)
    with (
        DecodedLayers([bad], budget=1 << 30) as dec,
        pytest.raises(ImageError, match=r"corrupt|ends early"),
    ):
        _read_all(dec.first(0), MiB)


def test_on_bytes_hears_every_decompressed_byte() -> None:
    payloads = _payloads()
    heard: dict[int, int] = {}

    def on_bytes(index: int, n: int) -> None:
        heard[index] = heard.get(index, 0) + n

    with DecodedLayers(_blobs(payloads), on_bytes=on_bytes) as dec:
        for i in range(len(payloads)):
            _read_all(dec.first(i), MiB)
    assert [heard.get(i, 0) for i in range(len(payloads))] == [len(p) for p in payloads]


@pytest.mark.skipif(runner.which("mksquashfs") is None, reason="squashfs-tools not installed")
def test_sif_bytes_do_not_depend_on_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_sif_build import build

    roomy = build(tmp_path, "roomy", mode="stream").read_bytes()
    monkeypatch.setattr(layerstreams, "DEFAULT_BUDGET", 0)
    tight = build(tmp_path, "tight", mode="stream").read_bytes()
    assert roomy == tight
