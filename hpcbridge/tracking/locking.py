"""A small advisory lock on a lock file (``fcntl.flock``).

Used for the shared poll cache and for read-modify-write of one submission
record.  Linux NFS clients emulate ``flock`` with POSIX byte-range locks, so
the lock also holds between login nodes sharing an NFS home.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from hpcbridge.errors import StateError


@contextlib.contextmanager
def locked(path: Path, *, timeout: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, mode 0600)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"could not lock {path} within {timeout:g} s",
                        "another hpcbridge process holds it; try again",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
