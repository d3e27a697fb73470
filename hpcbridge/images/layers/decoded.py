"""Decompress every layer once, all at the same time, for the two passes of a streaming build.

The streaming build reads each layer twice: a first pass plans the final tree
(apply.py into a MemFS), a second pass copies the surviving files' data to
``mksquashfs -tar`` (tar.py).  :class:`DecodedLayers` starts one thread
per layer as soon as it is made, so the layers are decompressed in parallel
(zlib and zstandard release the GIL) while the first pass parses them in
order, and it keeps the decompressed bytes in memory up to a byte budget so
that the second pass replays them instead of decompressing again, leaving the
CPU to mksquashfs.  A layer that does not fit in the budget is streamed with a
small bounded read-ahead during the first pass and decompressed again for the
second one, exactly as without this module.  The bytes handed out are the same
either way, so the SIF is too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Callable, Optional

from hpcbridge.images.layers.decompress import open_decompressed, raise_decode_error
from hpcbridge.images.protocols import BinaryReader, Layer

__all__ = ["DecodedLayers", "default_budget"]

_CHUNK = 1 << 20
_DEPTH = 8  # chunks read ahead of the reader once a layer is no longer kept
_MAX_BUDGET = 1 << 30


def default_budget() -> int:
    """1 GiB, or an eighth of the physical memory if that is less."""
    try:
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _MAX_BUDGET // 4
    return max(0, min(_MAX_BUDGET, phys // 8))


class _Budget:
    def __init__(self, total: int) -> None:
        self.left = total
        self.lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self.lock:
            if n > self.left:
                return False
            self.left -= n
            return True

    def give(self, n: int) -> None:
        with self.lock:
            self.left += n


class _Decoded:
    """One layer: a producer thread appends decompressed chunks; readers take them in order."""

    def __init__(self, layer: Layer, budget: _Budget) -> None:
        self.layer = layer
        self.name = layer.digest
        self._budget = budget
        self._cond = threading.Condition()
        self._chunks: list[Optional[bytes]] = []
        self._consumed = 0  # chunks the first reader has taken
        self._kept = 0  # bytes taken from the budget and still held
        self._keep = True
        self._done = False
        self._error: Optional[BaseException] = None
        self._stop = False
        self._t = threading.Thread(target=self._run, name=f"decode-{self.name[7:19]}", daemon=True)
        self._t.start()

    # -- producer --------------------------------------------------------
    def _run(self) -> None:
        src: Optional[BinaryReader] = None
        try:
            src = open_decompressed(self.layer, threaded=False)
            while True:
                chunk = src.read(_CHUNK)
                with self._cond:
                    if self._stop:
                        return
                    if chunk and self._keep:
                        if self._budget.take(len(chunk)):
                            self._kept += len(chunk)
                        else:  # over budget: stream this layer, decompress it again later
                            self._keep = False
                            for i in range(self._consumed):
                                self._chunks[i] = None
                            self._release_kept()
                    while (
                        not self._keep
                        and not self._stop
                        and len(self._chunks) - self._consumed >= _DEPTH
                    ):
                        self._cond.wait()
                    if self._stop:
                        return
                    if not chunk:
                        self._done = True
                        self._cond.notify_all()
                        return
                    self._chunks.append(chunk)
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the reader
            with self._cond:
                self._error = exc
                self._done = True
                self._cond.notify_all()
        finally:
            if src is not None:
                with contextlib.suppress(Exception):
                    src.close()

    # -- first reader ----------------------------------------------------
    def next_chunk(self) -> Optional[bytes]:
        """The next chunk of the first pass, None at the end."""
        with self._cond:
            while self._consumed >= len(self._chunks) and not self._done:
                self._cond.wait()
            if self._consumed < len(self._chunks):
                i = self._consumed
                chunk = self._chunks[i]
                assert chunk is not None
                self._consumed += 1
                if not self._keep:
                    self._chunks[i] = None  # not replayed: let it go
                self._cond.notify_all()
                return chunk
            if self._error is not None:
                raise_decode_error(self._error, self.name)
            return None

    def _release_kept(self) -> None:
        if self._kept:
            self._budget.give(self._kept)
            self._kept = 0

    # -- replay ----------------------------------------------------------
    def replayable(self) -> bool:
        with self._cond:
            return self._keep and self._done and self._error is None

    def take_chunks(self) -> list[bytes]:
        """All the chunks (only when :meth:`replayable`); the layer lets go of them."""
        with self._cond:
            chunks = [c for c in self._chunks if c is not None]
            self._chunks = []
            self._release_kept()
            return chunks

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._chunks = []
            self._release_kept()
            self._cond.notify_all()
        self._t.join(timeout=5)


class _ChunkReader:
    """``read(n)`` over a sequence of chunks, fetched by ``next_chunk``."""

    def __init__(self, next_chunk: Callable[[], Optional[bytes]]) -> None:
        self._next = next_chunk
        self._buf = b""
        self._pos = 0

    def _more(self) -> bool:
        chunk = self._next()
        if chunk is None:
            return False
        self._buf, self._pos = chunk, 0
        return True

    def read(self, n: int = -1, /) -> bytes:
        parts: list[bytes] = []
        got = 0
        while n < 0 or got < n:
            if self._pos >= len(self._buf) and not self._more():
                break
            end = len(self._buf) if n < 0 else min(len(self._buf), self._pos + n - got)
            part = self._buf[self._pos : end]
            self._pos = end
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._buf = b""


class _Replay:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self._i = 0

    def __call__(self) -> Optional[bytes]:
        if self._i >= len(self._chunks):
            return None
        chunk = self._chunks[self._i]
        self._chunks[self._i] = b""  # freed as soon as it is copied
        self._i += 1
        return chunk


class DecodedLayers:
    """The decompressed streams of ``layers`` for a first pass and a (replayed) second pass.

    Use as a context manager (stops the threads); ``first(i)`` once per layer
    in any order, then ``second(i)`` at most once per layer.
    """

    def __init__(self, layers: Sequence[Layer], budget: Optional[int] = None) -> None:
        self._budget = _Budget(default_budget() if budget is None else budget)
        self._layers = list(layers)
        self._decoded: list[_Decoded] = []
        try:
            for layer in self._layers:
                self._decoded.append(_Decoded(layer, self._budget))
        except BaseException:
            self.close()
            raise

    def first(self, index: int) -> BinaryReader:
        return _ChunkReader(self._decoded[index].next_chunk)

    def second(self, index: int) -> BinaryReader:
        d = self._decoded[index]
        if d.replayable():
            return _ChunkReader(_Replay(d.take_chunks()))
        d.stop()
        return open_decompressed(self._layers[index])

    def close(self) -> None:
        for d in self._decoded:
            d.stop()

    def __enter__(self) -> DecodedLayers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
