"""DecodedLayers: the first pass's headers read ahead within a budget; the second pass's data."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
import zstandard

from hpcbridge import runner
from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.image import VerifyingReader
from hpcbridge.images.layers import decoded as layerstreams
from hpcbridge.images.layers.decoded import HEAD_DEPTH, DecodedLayers
from hpcbridge.images.protocols import BinaryReader
from tests.unit.test_layers import GZ, TAR, ZST, Blob, entry, make_tar

MiB = 1 << 20


class CountingBlob(Blob):
    opens = 0

    def open(self):  # type: ignore[no-untyped-def]
        self.opens += 1
        return super().open()


def _tars() -> list[bytes]:
    return [
        make_tar(entry("big", os.urandom(MiB) + bytes(2 * MiB + 12345)), entry("etc/a", b"a")),
        make_tar(*(entry(f"f{i}", os.urandom(100)) for i in range(300))),
        make_tar(),
        make_tar(entry("x", bytes(7))),
    ]


def _blobs(tars: list[bytes]) -> list[CountingBlob]:
    packs = [
        (GZ, gzip.compress),
        (ZST, lambda b: zstandard.ZstdCompressor().compress(b)),
        (TAR, lambda b: b),
        (GZ, gzip.compress),
    ]
    return [CountingBlob(pack(t), mt) for t, (mt, pack) in zip(tars, packs)]


def _names(raw: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return tf.getnames()


def _read_all(reader: BinaryReader) -> bytes:
    try:
        return b"".join(iter(lambda: reader.read(MiB), b""))
    finally:
        reader.close()


@pytest.mark.parametrize("budget", [1, 100, 1 << 20])
def test_both_passes_give_every_member_and_byte(budget: int) -> None:
    tars = _tars()
    blobs = _blobs(tars)
    with DecodedLayers(blobs, budget=budget) as dec:
        for i, raw in enumerate(tars):
            got = list(dec.first(i))
            assert [o for o, _ in got] == list(range(len(got)))
            assert [ti.name for _, ti in got] == _names(raw)
        for i, raw in enumerate(tars):
            assert _read_all(dec.second(i)).startswith(raw)
        assert dec.peak <= budget
    assert [b.opens for b in blobs] == [2, 2, 2, 2]  # nothing is kept between the passes


def test_the_budget_holds_with_many_headers_ahead_and_a_slow_planner() -> None:
    blobs = [
        Blob(gzip.compress(make_tar(*(entry(f"l{k}/f{i}", b"x") for i in range(3000)))), GZ)
        for k in range(5)
    ]
    with DecodedLayers(blobs, budget=500, ahead=4) as dec:
        for i in range(len(blobs)):
            for n, _ in enumerate(dec.first(i)):
                if n % 500 == 0:
                    time.sleep(0.005)  # the threads ahead fill what they may meanwhile
        assert 0 < dec.peak <= 500
    assert HEAD_DEPTH < 10000


def test_the_layer_being_planned_holds_a_bounded_queue() -> None:
    blob = Blob(make_tar(*(entry(f"f{i}", b"") for i in range(3 * HEAD_DEPTH))), TAR)
    with DecodedLayers([blob]) as dec:
        it = dec.first(0)
        next(it)
        time.sleep(0.2)  # the thread parses on until the queue is full
        held = len(dec._started[0]._queue)  # the bound is the point
        assert HEAD_DEPTH - 1 <= held <= HEAD_DEPTH
        assert len(list(it)) == 3 * HEAD_DEPTH - 1


def test_leaving_early_stops_every_thread() -> None:
    blobs = [Blob(make_tar(*(entry(f"f{i}", b"") for i in range(20000))), TAR) for _ in range(3)]
    start = time.monotonic()
    with DecodedLayers(blobs, budget=10, ahead=2) as dec:
        next(dec.first(0))
    assert time.monotonic() - start < 10
    assert not [t for t in threading.enumerate() if t.name.startswith("headers-")]


def test_a_local_blob_is_read_to_its_end_and_checked() -> None:
    data = gzip.compress(make_tar(entry("a", b"a")) + os.urandom(MiB))  # data after the archive

    class Local(Blob):
        def open(self):  # type: ignore[no-untyped-def]
            wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
            return VerifyingReader(io.BytesIO(self.data), wrong, len(self.data), "test")

    with DecodedLayers([Local(data, GZ)]) as dec, pytest.raises(ImageError, match="hashes to"):
        list(dec.first(0))


def test_corrupt_and_non_tar_layers_are_image_errors() -> None:
    good = gzip.compress(make_tar(entry("f", bytes(3 * MiB))))
    bad = Blob(good[: len(good) // 2] + b"\xff" * 64 + good[len(good) // 2 :], GZ)
    with DecodedLayers([bad]) as dec, pytest.raises(ImageError, match=r"corrupt|ends early"):
        list(dec.first(0))
    junk = Blob(gzip.compress(b"this is not a tar archive" * 100), GZ)
    with DecodedLayers([junk]) as dec, pytest.raises(ImageError, match="not a valid tar"):
        list(dec.first(0))


def test_on_bytes_hears_every_decompressed_byte() -> None:
    tars = _tars()
    heard: dict[int, int] = {}

    def on_bytes(index: int, n: int) -> None:
        heard[index] = heard.get(index, 0) + n

    with DecodedLayers(_blobs(tars), on_bytes=on_bytes) as dec:
        for i in range(len(tars)):
            list(dec.first(i))
    assert [heard.get(i, 0) for i in range(len(tars))] == [len(t) for t in tars]


@pytest.mark.skipif(runner.which("mksquashfs") is None, reason="squashfs-tools not installed")
def test_sif_bytes_do_not_depend_on_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_sif_build import build

    roomy = build(tmp_path, "roomy", mode="stream").read_bytes()
    monkeypatch.setattr(layerstreams, "DEFAULT_BUDGET", 1)
    monkeypatch.setattr(layerstreams, "HEAD_DEPTH", 1)
    tight = build(tmp_path, "tight", mode="stream").read_bytes()
    assert roomy == tight
