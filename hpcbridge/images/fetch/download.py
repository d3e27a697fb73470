"""Download one registry blob into the blob cache: verified, resumable, never published partial.

Files in ``<cache>/blobs/sha256/``:

* ``<hex>``: the blob, renamed into place only once its sha256 matched;
* ``.<hex>.partial``: the bytes received so far, appended by one process at a time
  (it holds an exclusive ``flock`` on the file while it downloads);
* ``.<hex>.partial.json``: ``{"digest", "size", "committed"}``, where ``committed``
  is how many bytes of the partial file were written; updated every 64 MiB and
  whenever a download stops.

A download that is interrupted (network error, ``kill``) leaves both files.
The next attempt, in this process or a later one, truncates the partial file
to ``committed``, hashes those bytes again (a sha256 state cannot be saved;
re-reading them is fast) and asks for the rest with ``Range:
bytes=<committed>-``.  Nothing is ``fsync``'ed on the way (each sync stalled a
multi-GB download for seconds): what a killed process wrote is in the page
cache and complete; after a crash of the node the tail may be missing or
wrong, which the digest check of the finished file catches (it is then thrown
away and downloaded once more from the start, as is a file a registry that
answers 200 instead of 206 sent again in full).  Another process downloading the same blob is waited for
(its lock is polled, and its finished blob used); where the filesystem has no
``flock`` the download goes to a private temporary file, as before, without resume.
Leftover partial files are removed by :meth:`hpcbridge.images.cache.Cache.sweep`
after two days.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Optional, Protocol

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.transport import Response, Transport, TransportError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
COMMIT_EVERY = 64 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class BlobSource(Protocol):
    """What a download needs of the registry client (:class:`.registry.RegistryClient`)."""

    transport: Transport

    def blob_response(
        self, repository: str, digest: str, offset: int = 0
    ) -> Optional[Response]: ...


class DigestMismatch(ImageError):
    """Content did not hash to the digest it was fetched by."""


class _NoLocks(Exception):
    """The filesystem of the blob cache has no working flock."""


def partial_paths(blob_dir: Path, digest: str) -> tuple[Path, Path]:
    hex_ = digest.split(":", 1)[1]
    return blob_dir / f".{hex_}.partial", blob_dir / f".{hex_}.partial.json"


class Partial:
    """The partial file of one blob, locked by this process while it appends to it."""

    def __init__(self, blob_dir: Path, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        self.path, self.meta = partial_paths(blob_dir, digest)
        self.fd = -1
        self.done = 0
        self.committed = 0
        self.hasher = hashlib.sha256()

    def lock(self, dest: Path, poll: float = 0.2) -> bool:
        """Take the lock (waiting for another downloader); False if ``dest`` appeared meanwhile."""
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        wait = poll
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    self.close()
                    raise _NoLocks from exc
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if dest.exists():
                self.close()
                return False
            time.sleep(wait)
            wait = min(wait * 1.5, 2.0)
        if not dest.exists():
            return True
        # Another process published it while we waited; the file we hold may be a new,
        # empty partial we just created: remove it if it is still ours.
        with contextlib.suppress(OSError):
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.discard()
        self.close()
        return False

    def start(self) -> int:
        """Keep the committed bytes of an earlier attempt (hashed again); the offset to ask for."""
        committed = 0
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
            if meta.get("digest") == self.digest and meta.get("size") == self.size:
                committed = int(meta.get("committed") or 0)
        except (OSError, ValueError, TypeError):
            committed = 0
        committed = min(committed, os.fstat(self.fd).st_size)
        if 0 <= self.size < committed:
            committed = 0
        os.ftruncate(self.fd, committed)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.hasher = hashlib.sha256()
        left = committed
        while left:
            data = os.read(self.fd, min(_CHUNK, left))
            if not data:
                raise OSError(errno.EIO, f"{self.path} shrank while being read")
            self.hasher.update(data)
            left -= len(data)
        self.done = self.committed = committed
        return committed

    def restart(self) -> None:
        """The server sends the whole blob: drop what was kept."""
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.hasher = hashlib.sha256()
        self.done = self.committed = 0
        self.commit()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.hasher.update(data)
        self.done += len(data)
        if self.done - self.committed >= COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        """Say in the sidecar how much was written (for a later attempt to resume from)."""
        self.committed = self.done
        body = {"digest": self.digest, "size": self.size, "committed": self.done}
        tmp = self.meta.with_name(self.meta.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
        os.replace(tmp, self.meta)

    def publish(self, dest: Path, where: str) -> None:
        got = "sha256:" + self.hasher.hexdigest()
        if got != self.digest:
            self.restart()
            raise DigestMismatch(
                f"blob {self.digest} of {where} hashes to {got} ({self.done} bytes)",
                "the registry or a proxy altered it; nothing was kept",
            )
        os.fchmod(self.fd, 0o644)  # readable by whoever can enter the cache (a group)
        os.replace(self.path, dest)
        with contextlib.suppress(FileNotFoundError):
            self.meta.unlink()
        self.close()

    def discard(self) -> None:
        for p in (self.path, self.meta):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


def _offset_of(resp: Response) -> int:
    """Where a 206 answer starts (its Content-Range)."""
    m = _CONTENT_RANGE.match(resp.header("Content-Range"))
    return int(m.group(1)) if m else -1


def fetch_blob(
    client: BlobSource,
    repository: str,
    digest: str,
    dest: Path,
    size: int,
    on_bytes: Optional[Callable[[int], None]],
) -> Path:
    """Download ``digest`` to ``dest`` (see the module docstring); ``dest`` when done."""
    partial = Partial(dest.parent, digest, size)
    try:
        if not partial.lock(dest):
            return dest
    except _NoLocks:
        return _fetch_private(client, repository, digest, dest, size, on_bytes)
    try:
        offset = partial.start()
        if offset:
            log.info("resuming blob %s at byte %d of %d", digest, offset, size)
            if on_bytes is not None:
                on_bytes(offset)
        attempts = client.transport.retries + 1
        restarted = False
        for attempt in range(1, attempts + 1):
            try:
                _stream(client, repository, digest, partial, on_bytes)
                partial.publish(dest, repository)
                return dest
            except DigestMismatch:
                if restarted:
                    partial.close()
                    partial.discard()
                    raise
                restarted = True  # a bad partial file (restarted empty): once more
            except (OSError, http.client.HTTPException, TransportError) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ImageError(
                        f"no space left for blob {digest} in {dest.parent}",
                        "free space there or point cache.dir at a larger filesystem",
                    ) from exc
                if attempt >= attempts:
                    raise TransportError(
                        f"downloading blob {digest} of {repository} failed: {exc}",
                        "check the network; the next convert resumes where this one stopped",
                    ) from exc
                wait = client.transport.delay(attempt)
                log.debug("blob %s: %s; resuming at %d in %.1fs", digest, exc, partial.done, wait)
                client.transport.sleep(wait)
        raise AssertionError("unreachable")
    finally:
        if partial.fd >= 0:
            with contextlib.suppress(OSError):
                partial.commit()  # keep what arrived for the next attempt
            partial.close()


def _stream(
    client: BlobSource,
    repository: str,
    digest: str,
    partial: Partial,
    on_bytes: Optional[Callable[[int], None]],
) -> None:
    """One request for the rest of the blob, appended to the partial file."""
    if 0 <= partial.size == partial.done:
        return  # complete already (a crash between the last write and the rename)
    resp = client.blob_response(repository, digest, partial.done)
    if resp is None:
        return  # 416: nothing after what we have (a blob of unknown size, complete)
    try:
        if resp.status == 200 and partial.done:
            log.info("registry sent the whole blob %s again (no Range support)", digest)
            partial.restart()
        elif resp.status == 206 and _offset_of(resp) != partial.done:
            raise TransportError(f"registry answered a range of {digest} we did not ask for")
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                break
            partial.write(chunk)
            if 0 <= partial.size < partial.done:
                partial.restart()
                raise DigestMismatch(f"blob {digest} is larger than its {partial.size} bytes")
            if on_bytes is not None:
                on_bytes(len(chunk))
        if 0 <= partial.size != partial.done:
            raise TransportError(f"blob {digest}: the connection ended at byte {partial.done}")
    except BaseException:
        resp.abandon()  # the connection is in an unknown state: never reuse it
        raise
    resp.close()


def _fetch_private(
    client: BlobSource,
    repository: str,
    digest: str,
    dest: Path,
    size: int,
    on_bytes: Optional[Callable[[int], None]],
) -> Path:
    """Without flock: a private temp file, retried from the start (no resume)."""
    from hpcbridge.images.cache import temp_name

    attempts = client.transport.retries + 1
    for attempt in range(1, attempts + 1):
        tmp = dest.with_name(temp_name(dest.name))
        partial = Partial(dest.parent, digest, size)
        partial.path = tmp
        partial.meta = tmp.with_name(tmp.name + ".json")
        partial.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _stream(client, repository, digest, partial, on_bytes)
            partial.publish(dest, repository)
            return dest
        except (OSError, http.client.HTTPException, TransportError, DigestMismatch) as exc:
            partial.close()
            partial.discard()
            if attempt >= attempts:
                if isinstance(exc, ImageError):
                    raise
                raise TransportError(f"downloading blob {digest} failed: {exc}") from exc
            client.transport.sleep(client.transport.delay(attempt))
        except BaseException:
            partial.close()
            partial.discard()
            raise
    raise AssertionError("unreachable")
