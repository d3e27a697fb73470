"""Lock files: O_EXCL, stale takeover rules, waiting, heartbeat."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hpcbridge.images.lock import EMPTY_GRACE, FileLock, LockInfo, parse_lock, stale_reason

NOW = 1_000_000.0


def info(host: str = "h1", pid: int = 42) -> LockInfo:
    return LockInfo(host, pid, NOW - 5, "t")


def test_stale_reason_rules() -> None:
    alive = {42: True, 43: False}.get

    def reason(i: LockInfo | None, age: float) -> str | None:
        return stale_reason(
            i, NOW - age, NOW, host="h1", stale_after=300, alive=lambda p: bool(alive(p))
        )

    assert reason(info(), 1) is None  # live holder, fresh heartbeat
    assert "is gone" in (reason(info(pid=43), 1) or "")  # same host, dead pid: at once
    assert reason(info(host="h2", pid=43), 100) is None  # other host: pid says nothing
    assert "no heartbeat" in (reason(info(host="h2"), 301) or "")  # other host, silent too long
    assert "no heartbeat" in (reason(info(), 301) or "")  # even a live pid (pid reuse)
    assert reason(None, EMPTY_GRACE - 1) is None  # being written right now
    assert "empty or unreadable" in (reason(None, EMPTY_GRACE + 1) or "")


def test_parse_lock() -> None:
    assert parse_lock('{"host":"a","pid":1,"time":2.5,"token":"x"}') == LockInfo("a", 1, 2.5, "x")
    assert parse_lock("") is None
    assert parse_lock('{"host":"a"}') is None


def test_acquire_release_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    a, b = FileLock(path, heartbeat=0), FileLock(path, heartbeat=0)
    assert a.try_acquire()
    assert not b.try_acquire()
    body = json.loads(path.read_text())
    assert body["pid"] == os.getpid() and body["host"] and body["token"] == a.token
    a.release()
    assert not path.exists()
    assert b.try_acquire()
    a.release()  # not ours any more: must not remove b's lock
    assert path.exists()
    b.release()


def test_dead_holder_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": "me", "pid": 999999, "time": 0, "token": "old"}))
    lock = FileLock(path, host="me", heartbeat=0, alive=lambda pid: False)
    assert lock.acquire(timeout=5)
    assert json.loads(path.read_text())["token"] == lock.token
    lock.release()
    assert sorted(os.listdir(tmp_path)) == []  # the stale file moved aside is gone too


def test_silent_foreign_holder_is_taken_over_after_bound(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": "other", "pid": 1, "time": 0, "token": "old"}))
    old = time.time() - 400
    os.utime(path, (old, old))
    lock = FileLock(path, host="me", heartbeat=0, stale_after=300)
    assert lock.acquire(timeout=5)
    lock.release()


def test_live_holder_is_waited_for_and_done_returns(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = FileLock(path, heartbeat=0)
    assert holder.try_acquire()
    published = threading.Event()
    sleeps: list[float] = []

    def fake_sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 5:
            published.set()

    waiter = FileLock(path, heartbeat=0, sleep=fake_sleep)
    notified: list[LockInfo | None] = []
    got = waiter.acquire(done=published.is_set, on_wait=notified.append)
    assert got is False and len(sleeps) == 5
    assert sleeps == sorted(sleeps)  # backoff grows (with jitter, still increasing at 1.5x)
    assert notified and notified[0] is not None and notified[0].token == holder.token
    holder.release()


def test_waiter_gets_lock_when_holder_releases_without_result(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = FileLock(path, heartbeat=0)
    assert holder.try_acquire()
    waiter = FileLock(path, heartbeat=0, sleep=lambda s: holder.release())
    assert waiter.acquire(done=lambda: False) is True
    waiter.release()


def _eventually(condition: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Wait for ``condition`` (a loaded machine may run the heartbeat thread late)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"not within {deadline:g} s: {what}"
        time.sleep(0.01)


def test_heartbeat_refreshes_mtime_and_notices_loss(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = FileLock(path, heartbeat=0.05)
    assert lock.try_acquire()
    old = time.time() - 1000
    os.utime(path, (old, old))
    _eventually(lambda: time.time() - path.stat().st_mtime < 5, "the heartbeat refreshed the mtime")
    assert not lock.lost
    path.unlink()
    _eventually(lambda: lock.lost, "the heartbeat noticed the lock file is gone")
    lock.release()


def test_only_one_of_many_breakers_wins(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": "me", "pid": 999999, "time": 0, "token": "old"}))
    locks = [FileLock(path, host="me", heartbeat=0, alive=lambda p: p != 999999) for _ in range(8)]
    winners: list[FileLock] = []
    barrier = threading.Barrier(len(locks))

    def go(lock: FileLock) -> None:
        barrier.wait()
        lock.break_if_stale()
        if lock.try_acquire():
            winners.append(lock)

    threads = [threading.Thread(target=go, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    winners[0].release()
    assert os.listdir(tmp_path) == []
