"""Decompress layers ahead of the first pass within one byte budget; the second pass reads again.

The streaming build reads each layer twice: a first pass plans the final tree
(apply.py into a MemFS), a second pass copies the surviving files' data to
``mksquashfs -tar`` (tar.py).  Keeping the decompressed layers between the two
passes would cost memory (or disk) in proportion to the image, so nothing is
kept: the second pass decompresses the stored blob again (:meth:`second`),
which costs far less than squashing (gzip inflates at about 1 GB/s with
ISA-L, zstd faster) and leaves the disk at blobs + SIF.

For the first pass, :class:`DecodedLayers` decompresses the layer being read
and up to ``ahead`` layers after it on threads (zlib, ISA-L and zstandard
release the GIL), so decompression overlaps with parsing.  Every decompressed
chunk waiting to be read, and the one the reader holds, counts against one
byte budget, respected exactly: a thread takes budget for a whole chunk before
reading it and hands back what the read did not fill; a reader hands a chunk
back when it takes the next one or closes.  A thread decompressing ahead
leaves ``2 x chunk`` of the budget free, so the layer being read can always
go on (no deadlock whatever the budget).  A reader closed before the end
(tar stops at its end-of-archive blocks) lets its thread read to the end
without keeping anything, so local blobs are still verified, and waits for it.

``on_bytes(index, n)`` (optional) hears every decompressed chunk: the progress
hook for "bytes of layer i unpacked" (see :mod:`hpcbridge.images.progress`).
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Sequence
from typing import Callable, Optional

from hpcbridge.images.layers.decompress import open_decompressed, raise_decode_error
from hpcbridge.images.protocols import BinaryReader, Layer

__all__ = ["DEFAULT_BUDGET", "MIN_BUDGET", "DecodedLayers"]

_MAX_CHUNK = 1 << 20
_MIN_CHUNK = 64 << 10
#: Bytes of decompressed data the first pass may hold at once (all layers together).
DEFAULT_BUDGET = 16 << 20
#: The smallest budget: four of the smallest chunks (a smaller one is raised to it).
MIN_BUDGET = 4 * _MIN_CHUNK
DEFAULT_AHEAD = 2

OnBytes = Callable[[int, int], None]


class _Budget:
    """Bytes held by the first pass; the layer being read (``head``) may use the reserve."""

    def __init__(self, total: int) -> None:
        self.total = max(total, MIN_BUDGET)
        self.chunk = max(_MIN_CHUNK, min(_MAX_CHUNK, self.total // 8))
        self.reserve = 2 * self.chunk
        self.left = self.total
        self.head = 0
        self.peak = 0  # most bytes ever held (tests check it against the total)
        self.cond = threading.Condition()

    def take(self, index: int, n: int, stopped: Callable[[], bool]) -> bool:
        """Wait until ``n`` bytes may be held for layer ``index``; False once ``stopped()``."""
        with self.cond:
            while not stopped():
                floor = 0 if index <= self.head else self.reserve
                if self.left - n >= floor:
                    self.left -= n
                    self.peak = max(self.peak, self.total - self.left)
                    return True
                self.cond.wait()
            return False

    def give(self, n: int) -> None:
        if n:
            with self.cond:
                self.left += n
                self.cond.notify_all()

    def move_head(self, index: int) -> None:
        with self.cond:
            self.head = max(self.head, index)
            self.cond.notify_all()


class _Layer:
    """One layer of the first pass: a thread decompresses, the reader takes chunks in order."""

    def __init__(
        self, layer: Layer, index: int, budget: _Budget, on_bytes: Optional[OnBytes]
    ) -> None:
        self.layer = layer
        self.index = index
        self._budget = budget
        self._on_bytes = on_bytes
        self._queue: collections.deque[bytes] = collections.deque()
        self._held = 0  # bytes of the chunk the reader holds
        self._done = False
        self._error: Optional[BaseException] = None
        self._stop = False  # stop now, nothing more is wanted
        self._drain = False  # read to the end, keep nothing (the reader closed early)
        self._t = threading.Thread(
            target=self._run, name=f"decode-{layer.digest[7:19]}", daemon=True
        )
        self._t.start()

    # -- producer --------------------------------------------------------
    def _stopped(self) -> bool:
        return self._stop or self._drain

    def _run(self) -> None:
        src: Optional[BinaryReader] = None
        try:
            src = open_decompressed(self.layer, threaded=False)
            size = self._budget.chunk
            while True:
                if not self._budget.take(self.index, size, self._stopped):
                    break  # stopping or draining: nothing more is kept
                chunk = src.read(size)
                self._budget.give(size - len(chunk))
                with self._budget.cond:
                    if self._stop or self._drain or not chunk:
                        self._budget.left += len(chunk)
                        self._budget.cond.notify_all()
                        if not chunk:
                            self._done = True
                            return
                        break
                    self._queue.append(chunk)
                    self._budget.cond.notify_all()
                if self._on_bytes is not None:
                    self._on_bytes(self.index, len(chunk))
            if self._drain and not self._stop:
                while src.read(size):
                    pass
                self._finish_drain(src)
                src = None
        except BaseException as exc:  # handed to the reader
            with self._budget.cond:
                self._error = exc
                self._budget.cond.notify_all()
        finally:
            with self._budget.cond:
                self._done = True
                self._budget.cond.notify_all()
            if src is not None:
                with contextlib.suppress(Exception):
                    src.close()

    def _finish_drain(self, src: BinaryReader) -> None:
        src.close()  # a verifying reader checks the digest here and may raise

    # -- reader ----------------------------------------------------------
    def next_chunk(self) -> Optional[bytes]:
        """The next chunk, None at the end; the previous one goes back to the budget."""
        cond = self._budget.cond
        with cond:
            self._budget.left += self._held
            self._held = 0
            cond.notify_all()
            while not self._queue and not self._done:
                cond.wait()
            if self._queue:
                chunk = self._queue.popleft()
                self._held = len(chunk)
                return chunk
            error = self._error
        if error is not None:
            raise_decode_error(error, self.layer.digest)
        return None

    def finish(self) -> None:
        """The reader is done: keep nothing more, let the thread read to the end, wait for it."""
        with self._budget.cond:
            self._drain = True
            freed = self._held + sum(len(c) for c in self._queue)
            self._queue.clear()
            self._held = 0
            self._budget.left += freed
            self._budget.cond.notify_all()
        self._t.join()
        if self._error is not None:
            raise_decode_error(self._error, self.layer.digest)

    def stop(self) -> None:
        with self._budget.cond:
            self._stop = True
            freed = self._held + sum(len(c) for c in self._queue)
            self._queue.clear()
            self._held = 0
            self._budget.left += freed
            self._budget.cond.notify_all()
        self._t.join(timeout=5)


class _ChunkReader:
    """``read(n)`` over the chunks of one :class:`_Layer`."""

    def __init__(self, owner: _Layer) -> None:
        self._owner = owner
        self._buf = b""
        self._pos = 0
        self._closed = False

    def _more(self) -> bool:
        chunk = self._owner.next_chunk()
        if chunk is None:
            self._buf, self._pos = b"", 0
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
        if not self._closed:
            self._closed = True
            self._buf = b""
            self._owner.finish()


class DecodedLayers:
    """The decompressed streams of ``layers``: a first pass read ahead, a second pass read again.

    Use as a context manager (stops the threads); ``first(i)`` once per layer
    in increasing order, then ``second(i)`` at most once per layer.  ``budget``:
    bytes of decompressed data the first pass holds at most (default 16 MiB,
    at least :data:`MIN_BUDGET`); ``ahead``: layers decompressed beyond the one
    being read.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        budget: Optional[int] = None,
        *,
        ahead: int = DEFAULT_AHEAD,
        on_bytes: Optional[OnBytes] = None,
    ) -> None:
        self._budget = _Budget(DEFAULT_BUDGET if budget is None else budget)
        self._layers = list(layers)
        self._ahead = max(0, ahead)
        self._on_bytes = on_bytes
        self._started: dict[int, _Layer] = {}  # begun, not yet handed to a reader
        self._all: list[_Layer] = []
        self._closed = False

    @property
    def budget(self) -> int:
        return self._budget.total

    @property
    def peak(self) -> int:
        """The most decompressed bytes the first pass held at once."""
        return self._budget.peak

    def _start(self, upto: int) -> None:
        for i in range(upto + 1):
            if i < len(self._layers) and i not in self._started and i >= self._budget.head:
                if any(layer.index == i for layer in self._all):
                    continue  # already handed to a reader
                self._started[i] = _Layer(self._layers[i], i, self._budget, self._on_bytes)
                self._all.append(self._started[i])

    def first(self, index: int) -> BinaryReader:
        if self._closed:
            raise ValueError("DecodedLayers is closed")
        for i in [i for i in self._started if i < index]:
            self._started.pop(i).stop()  # a layer the caller skipped
        self._budget.move_head(index)
        self._start(index + self._ahead)
        return _ChunkReader(self._started.pop(index))

    def second(self, index: int) -> BinaryReader:
        return open_decompressed(self._layers[index])

    def close(self) -> None:
        self._closed = True
        for layer in self._all:
            layer.stop()
        self._started.clear()

    def __enter__(self) -> DecodedLayers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
