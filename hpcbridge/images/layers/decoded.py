"""The two passes of a streaming build over the layers: headers read ahead, then data read again.

The streaming build reads each layer twice: a first pass plans the final tree
from the tar headers alone (apply.py into a MemFS), a second pass copies the
surviving files' data to ``mksquashfs -tar`` (tar.py).  Keeping decompressed
layers between the passes would cost memory (or disk) in proportion to the
image, so nothing is kept: the second pass decompresses the stored blob again
(:meth:`DecodedLayers.second`) and the disk holds only blobs + SIF.

The first pass needs only the headers, so :class:`DecodedLayers` decompresses
and parses the layer being planned and up to ``ahead`` layers after it, each
on its own thread (zlib, ISA-L and zstandard release the GIL: a layer of big
files is decompressed in parallel with the others, at no memory cost, as its
data is skipped), and hands over each member's ``TarInfo`` with its ordinal.
What waits is bounded by a count of headers, exactly: the layer being planned
holds at most :data:`HEAD_DEPTH` of them, the layers ahead together at most
``budget`` (a header and its name are a few hundred bytes).  A layer's thread
reads its stream to the end after the archive's last member, so a local blob is
still verified, and the reader of the first pass gets that error too.

``on_bytes(index, n)`` (optional) hears every decompressed chunk of the first
pass: the progress hook for "bytes of layer i unpacked" (see
:mod:`hpcbridge.images.progress`).
"""

from __future__ import annotations

import collections
import contextlib
import tarfile
import threading
from collections.abc import Iterator, Sequence
from typing import Callable, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.layers.decompress import open_decompressed, raise_decode_error
from hpcbridge.images.layers.tree import members
from hpcbridge.images.protocols import BinaryReader, Layer

__all__ = ["DEFAULT_BUDGET", "HEAD_DEPTH", "DecodedLayers"]

_CHUNK = 1 << 20
_TAR_BUF = 64 << 10
#: Headers the layers ahead of the one being planned may hold, all together.
DEFAULT_BUDGET = 32768
#: Headers the layer being planned may hold beyond what its reader took.
HEAD_DEPTH = 4096
DEFAULT_AHEAD = 2

OnBytes = Callable[[int, int], None]
Member = tuple[int, tarfile.TarInfo]


class _Counting:
    """A reader that reports how many bytes went through it."""

    def __init__(self, src: BinaryReader, hear: Callable[[int], None]) -> None:
        self._src = src
        self._hear = hear

    def read(self, n: int = -1, /) -> bytes:
        data = self._src.read(n)
        if data:
            self._hear(len(data))
        return data

    def close(self) -> None:
        self._src.close()


class _Shared:
    """The lock, the budget of the layers ahead and which layer is being planned."""

    def __init__(self, budget: int) -> None:
        self.cond = threading.Condition()
        self.budget = max(1, budget)
        self.ahead = 0  # headers held by layers ahead of the head
        self.head = 0
        self.peak = 0  # most headers held ahead at once (tests check it)


class _Layer:
    """One layer: a thread parses headers into a queue; the planning pass takes them in order."""

    def __init__(self, layer: Layer, index: int, shared: _Shared, on_bytes: Optional[OnBytes]):
        self.layer = layer
        self.index = index
        self._s = shared
        self._on_bytes = on_bytes
        self._queue: collections.deque[Member] = collections.deque()
        self._charged = 0  # queued headers counted in the shared budget
        self._done = False
        self._stop = False
        self._error: Optional[BaseException] = None
        self._named = False  # the error already names the layer
        self._t = threading.Thread(
            target=self._run, name=f"headers-{layer.digest[7:19]}", daemon=True
        )
        self._t.start()

    # -- producer --------------------------------------------------------
    def _put(self, item: Member) -> bool:
        """Queue a header once the budget allows; False when stopping."""
        s = self._s
        with s.cond:
            while not self._stop:
                if self.index <= s.head:
                    if len(self._queue) < HEAD_DEPTH:
                        break
                elif s.ahead < s.budget:
                    s.ahead += 1
                    self._charged += 1
                    s.peak = max(s.peak, s.ahead)
                    break
                s.cond.wait()
            if self._stop:
                return False
            self._queue.append(item)
            s.cond.notify_all()
            return True

    def _run(self) -> None:
        src: Optional[BinaryReader] = None
        try:
            src = open_decompressed(self.layer, threaded=False)
            if self._on_bytes is not None:
                hook, index = self._on_bytes, self.index
                src = _Counting(src, lambda n: hook(index, n))
            try:
                with tarfile.open(fileobj=src, mode="r|", bufsize=_TAR_BUF) as tf:  # type: ignore[call-overload]
                    for ordinal, ti in enumerate(members(tf)):
                        if not self._put((ordinal, ti)):
                            return
            except tarfile.TarError as exc:
                self._named = True
                raise ImageError(
                    f"layer {self.layer.digest} is not a valid tar archive: {exc}",
                    "the layer blob is corrupt or not a filesystem layer",
                ) from exc
            while src.read(_CHUNK):  # to the end: a verifying reader checks the digest
                if self._stop:
                    return
            reader, src = src, None
            reader.close()
        except BaseException as exc:  # handed to the planning pass
            with self._s.cond:
                self._error = exc
        finally:
            with self._s.cond:
                self._done = True
                self._s.cond.notify_all()
            if src is not None:
                with contextlib.suppress(Exception):
                    src.close()

    # -- the planning pass -------------------------------------------------
    def headers(self) -> Iterator[Member]:
        s = self._s
        while True:
            with s.cond:
                while not self._queue and not self._done:
                    s.cond.wait()
                if self._queue:
                    item = self._queue.popleft()
                    if self._charged:
                        self._charged -= 1
                        s.ahead -= 1
                    s.cond.notify_all()
                else:
                    error = self._error
                    break
            yield item
        self._t.join()
        if error is not None:
            if self._named:
                raise error
            raise_decode_error(error, self.layer.digest)

    def promote(self) -> None:
        """This layer is being planned now: what it holds leaves the shared budget."""
        s = self._s
        with s.cond:
            s.ahead -= self._charged
            self._charged = 0
            s.cond.notify_all()

    def stop(self) -> None:
        s = self._s
        with s.cond:
            self._stop = True
            s.ahead -= self._charged
            self._charged = 0
            self._queue.clear()
            s.cond.notify_all()
        self._t.join(timeout=5)


class DecodedLayers:
    """The first pass's headers of ``layers`` (read ahead) and the second pass's streams.

    Use as a context manager (stops the threads); ``first(i)`` once per layer in
    increasing order, then ``second(i)`` at most once per layer.  ``budget``:
    headers the layers ahead may hold together (default :data:`DEFAULT_BUDGET`);
    ``ahead``: layers parsed beyond the one being planned.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        budget: Optional[int] = None,
        *,
        ahead: int = DEFAULT_AHEAD,
        on_bytes: Optional[OnBytes] = None,
    ) -> None:
        self._shared = _Shared(DEFAULT_BUDGET if budget is None else budget)
        self._layers = list(layers)
        self._ahead = max(0, ahead)
        self._on_bytes = on_bytes
        self._started: dict[int, _Layer] = {}
        self._closed = False

    @property
    def budget(self) -> int:
        return self._shared.budget

    @property
    def peak(self) -> int:
        """The most headers the layers ahead held at once."""
        return self._shared.peak

    def first(self, index: int) -> Iterator[Member]:
        """Layer ``index``'s ``(ordinal, TarInfo)`` pairs, in order (data skipped)."""
        if self._closed:
            raise ValueError("DecodedLayers is closed")
        with self._shared.cond:
            self._shared.head = max(self._shared.head, index)
            self._shared.cond.notify_all()
        for i in range(index, min(index + self._ahead + 1, len(self._layers))):
            if i not in self._started:
                self._started[i] = _Layer(self._layers[i], i, self._shared, self._on_bytes)
        layer = self._started[index]
        layer.promote()
        return layer.headers()

    def second(self, index: int) -> BinaryReader:
        """Layer ``index``'s decompressed stream, from the blob again."""
        return open_decompressed(self._layers[index])

    def close(self) -> None:
        self._closed = True
        for layer in self._started.values():
            layer.stop()

    def __enter__(self) -> DecodedLayers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
