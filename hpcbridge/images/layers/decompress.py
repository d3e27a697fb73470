"""Streaming decompression of layer blobs (gzip, zstd, plain tar).

The compression is detected from the magic bytes and cross-checked with the
media type; a mismatch is logged and the magic bytes win (``docker save``
archives and some registries label plain tars as gzip and the other way
round).  gzip is inflated with ISA-L (python-isal, about twice as fast) when
it is installed, else with zlib; both give the same bytes.  Decompression runs
on a background thread that fills a small bounded queue, so it overlaps with
whatever consumes the stream (zlib, ISA-L and zstandard release the GIL while
they work).
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from typing import Any, Callable, NoReturn, Optional, Union

from hpcbridge.errors import ImageError
from hpcbridge.images.protocols import BinaryReader, Layer

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_DEPTH = 8

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4"}


def compression_of_media_type(media_type: str) -> Optional[str]:
    """``gzip``/``zstd``/``none`` for a layer media type, or None if it is not a tar layer."""
    mt = media_type.lower()
    if "encrypted" in mt:
        return None
    if not mt:
        return "unknown"
    if "tar" not in mt and "layer" not in mt:
        return None
    if mt.endswith("gzip"):
        return "gzip"
    if mt.endswith("zstd"):
        return "zstd"
    return "none"


def detect_compression(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


class _Peeked:
    """A reader that hands back ``head`` before the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryReader) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                out, self._head = self._head, b""
                if n < 0:
                    return out + self._raw.read()
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._raw.read(n)

    def close(self) -> None:
        self._raw.close()


def _load_inflate() -> Callable[[], Any]:
    """ISA-L's inflate (python-isal, about twice as fast as zlib) if installed, else zlib's."""
    try:
        from isal import isal_zlib
    except ImportError:
        return lambda: zlib.decompressobj(31)
    return lambda: isal_zlib.decompressobj(31)


_inflater = _load_inflate()


class _Gunzip:
    """Streaming multi-member gzip reader over a raw stream."""

    def __init__(self, raw: BinaryReader) -> None:
        self._raw = raw
        self._d = _inflater()
        self._in = b""
        self._started = False
        self._eof = False

    def read(self, n: int = -1, /) -> bytes:
        want = _CHUNK if n < 0 else n
        out = bytearray()
        while len(out) < want and not self._eof:
            if not self._in:
                self._in = self._raw.read(_CHUNK)
                if not self._in:
                    if self._started:
                        raise ImageError("gzip stream ends early", "the layer blob is truncated")
                    self._eof = True
                    break
            if not self._started:
                self._in = self._in.lstrip(b"\x00")  # zero padding between/after members
                if not self._in:
                    continue
                if len(self._in) < 2:
                    self._in += self._raw.read(_CHUNK)
                if not self._in.startswith(GZIP_MAGIC):
                    log.warning(
                        "ignoring %d bytes of trailing data after gzip stream", len(self._in)
                    )
                    self._eof = True
                    break
                self._started = True
            out += self._d.decompress(self._in, want - len(out))
            self._in = self._d.unconsumed_tail
            if self._d.eof:
                self._in = self._d.unused_data + self._in
                self._d = _inflater()
                self._started = False
        return bytes(out)

    def close(self) -> None:
        self._raw.close()


def raise_decode_error(exc: BaseException, name: str) -> NoReturn:
    """Re-raise an error a decompressing thread met, as an ImageError naming layer ``name``."""
    if isinstance(exc, ImageError):
        raise ImageError(f"layer {name}: {exc.message}", exc.hint) from exc
    if isinstance(exc, (zlib.error, EOFError)) or type(exc).__name__ in (
        "ZstdError",
        "IsalError",
    ):
        raise ImageError(
            f"layer {name} is corrupt: {exc}",
            "delete the blob from the cache and fetch again",
        ) from exc
    raise exc


class _Prefetch:
    """Reads ``src`` on a thread in chunks; ``read`` hands them out in order."""

    def __init__(self, src: BinaryReader, name: str) -> None:
        self._src = src
        self._q: queue.Queue[Union[bytes, BaseException, None]] = queue.Queue(_DEPTH)
        self._buf = b""
        self._pos = 0
        self._done = False
        self._stop = threading.Event()
        self._name = name
        self._t = threading.Thread(target=self._run, name=f"decompress-{name[7:19]}", daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._src.read(_CHUNK)
                self._put(chunk if chunk else None)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the reading thread
            self._put(exc)

    def _put(self, item: Union[bytes, BaseException, None]) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._q.get()
        if item is None:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise_decode_error(item, self._name)
        self._buf = item
        self._pos = 0
        return True

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            parts = [self._buf[self._pos :]]
            while self._next():
                parts.append(self._buf)
            self._buf, self._pos = b"", 0
            return b"".join(parts)
        if self._pos >= len(self._buf) and not self._next():
            return b""
        avail = len(self._buf) - self._pos
        if n <= avail:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos :]]
        self._pos = len(self._buf)  # consumed, even if the stream ends right here
        got = avail
        while got < n and self._next():
            take = self._buf[: n - got]
            parts.append(take)
            got += len(take)
            self._pos = len(take)
        return b"".join(parts)

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._t.join(timeout=5)
        self._src.close()


def open_decompressed(layer: Layer, *, threaded: bool = True) -> BinaryReader:
    """The uncompressed tar stream of ``layer`` (caller closes it)."""
    expected = compression_of_media_type(layer.media_type)
    if expected is None:
        raise ImageError(
            f"layer {layer.digest} has media type {layer.media_type!r}, which is not a tar layer",
            "only gzip, zstd and uncompressed tar layers can be converted",
        )
    raw: BinaryReader = layer.open()
    head = raw.read(8)
    found = detect_compression(head)
    if found not in ("gzip", "zstd", "none"):
        raw.close()
        raise ImageError(
            f"layer {layer.digest} is {found}-compressed, which OCI images do not use",
            "only gzip, zstd and uncompressed tar layers can be converted",
        )
    if expected not in ("unknown", found):
        log.warning(
            "layer %s is labelled %s (%s) but its data is %s; using %s",
            layer.digest,
            expected,
            layer.media_type,
            found,
            found,
        )
    src: BinaryReader = _Peeked(head, raw)
    if found == "gzip":
        src = _Gunzip(src)
    elif found == "zstd":
        import zstandard

        src = zstandard.ZstdDecompressor().stream_reader(
            src,  # type: ignore[arg-type]
            read_size=_CHUNK,
            read_across_frames=True,
        )
    if not threaded:
        return src
    return _Prefetch(src, layer.digest)
