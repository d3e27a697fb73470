"""A lock file that works across hosts on NFS: O_EXCL create, heartbeat, stale takeover.

The lock file is created with ``O_CREAT|O_EXCL`` (atomic on NFSv3+ and local
filesystems) and holds one JSON line: host, pid, time and a random token.  While
held, a heartbeat thread refreshes its mtime.  A waiter takes the lock over when
it is *stale*: held by a dead process on the same host, or not refreshed for
``stale_after`` seconds (another host that died or lost the filesystem), or
empty/unreadable for longer than a short grace period (a crash between create
and write).  Takeover renames the stale file to a unique name first, so that of
several waiters only one breaks it.

The lock only avoids duplicate work: results are published by atomic rename of
deterministic content, so even if two holders ever overlapped (clock skew on a
shared filesystem), readers would still never see a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger(__name__)

HOST = socket.gethostname()
EMPTY_GRACE = 30.0  # seconds an empty lock file may exist before it is stale


@dataclass(frozen=True)
class LockInfo:
    host: str
    pid: int
    time: float
    token: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {time.strftime('%H:%M:%S', time.localtime(self.time))}"


def parse_lock(text: str) -> Optional[LockInfo]:
    """The holder recorded in a lock file, or None when empty or unreadable."""
    try:
        obj = json.loads(text)
        return LockInfo(str(obj["host"]), int(obj["pid"]), float(obj["time"]), str(obj["token"]))
    except (ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stale_reason(
    info: Optional[LockInfo],
    mtime: float,
    now: float,
    *,
    host: str,
    stale_after: float,
    alive: Callable[[int], bool] = pid_alive,
) -> Optional[str]:
    """Why a lock is stale, or None if its holder may still be working (pure given ``alive``)."""
    age = now - mtime
    if info is None:
        return f"empty or unreadable for {age:.0f} s" if age > EMPTY_GRACE else None
    if info.host == host and not alive(info.pid):
        return f"its holder (pid {info.pid} on this host) is gone"
    if age > stale_after:
        return f"no heartbeat from {info.describe()} for {age:.0f} s"
    return None


class FileLock:
    """``acquire()``/``release()`` around a lock file; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        mode: int = 0o644,
        stale_after: float = 300.0,
        heartbeat: float = 10.0,
        host: str = HOST,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.path = path
        self.mode = mode
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.host = host
        self.sleep = sleep
        self.clock = clock
        self.alive = alive
        self.token = ""
        self.lost = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def held(self) -> bool:
        return bool(self.token)

    def try_acquire(self) -> bool:
        """One O_EXCL attempt; on success write our identity and start the heartbeat."""
        token = f"{random.getrandbits(64):016x}"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        except FileExistsError:
            return False
        try:
            with contextlib.suppress(OSError):
                os.fchmod(fd, self.mode)
            body = json.dumps(
                {"host": self.host, "pid": os.getpid(), "time": self.clock(), "token": token}
            )
            os.write(fd, body.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.token = token
        self.lost = False
        self._start_heartbeat()
        return True

    def holder(self) -> tuple[Optional[LockInfo], float]:
        """(info, mtime) of the current lock file; raises FileNotFoundError if none."""
        st = os.stat(self.path)
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise
        return parse_lock(text), st.st_mtime

    def _reason(self) -> tuple[Optional[str], Optional[LockInfo]]:
        info, mtime = self.holder()
        return (
            stale_reason(
                info,
                mtime,
                self.clock(),
                host=self.host,
                stale_after=self.stale_after,
                alive=self.alive,
            ),
            info,
        )

    def break_if_stale(self) -> bool:
        """Remove the lock if stale. True if it is gone.

        Breaking is itself serialised by a short-lived ``<lock>.break`` file
        (O_EXCL), and the staleness is checked again while holding it, so two
        waiters can never both remove a lock (one might otherwise remove the
        fresh lock the other just created).
        """
        try:
            reason, info = self._reason()
        except FileNotFoundError:
            return True
        if reason is None:
            return False
        breaker = FileLock(
            self.path.with_name(self.path.name + ".break"),
            mode=self.mode,
            stale_after=EMPTY_GRACE,
            heartbeat=0,
            host=self.host,
            clock=self.clock,
            alive=self.alive,
        )
        if not breaker.try_acquire():
            with contextlib.suppress(FileNotFoundError):
                if breaker._reason()[0] is not None:  # a breaker that died while breaking
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(breaker.path)
            return False
        try:
            try:
                again, info_again = self._reason()
            except FileNotFoundError:
                return True
            if again is None or info_again != info:
                return False
            os.unlink(self.path)
        except FileNotFoundError:
            return True
        finally:
            breaker.release()
        log.warning("took over stale lock %s: %s", self.path, reason)
        return True

    def acquire(
        self,
        *,
        done: Callable[[], bool] = lambda: False,
        timeout: Optional[float] = None,
        on_wait: Optional[Callable[[Optional[LockInfo]], None]] = None,
    ) -> bool:
        """Wait for the lock. Returns True when held, False as soon as ``done()`` is true.

        ``done`` lets a waiter stop when another process has published the result.
        """
        start = time.monotonic()
        delay = 0.05
        told = False
        while True:
            if done():
                return False
            if self.try_acquire():
                if done():  # published between our check and our lock
                    self.release()
                    return False
                return True
            if self.break_if_stale():
                continue
            if on_wait is not None and not told:
                told = True
                with contextlib.suppress(OSError):
                    on_wait(self.holder()[0])
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"lock {self.path} still held after {timeout:.0f} s")
            self.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 1.5, 2.0)

    def _start_heartbeat(self) -> None:
        if self.heartbeat <= 0:
            return
        self._stop.clear()
        token = self.token

        def beat() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    info, _ = self.holder()
                    if info is None or info.token != token:
                        self.lost = True
                        log.warning("lock %s was taken over by another process", self.path)
                        return
                    os.utime(self.path)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        self.lost = True
                        return
                    log.debug("heartbeat on %s failed: %s", self.path, exc)

        self._thread = threading.Thread(target=beat, name="hpcbridge-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not self.token:
            return
        token, self.token = self.token, ""
        try:
            info, _ = self.holder()
        except FileNotFoundError:
            return
        if info is not None and info.token == token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
