"""Cache: prune selection, sizes/ages, temp sweeping, records, space checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import Cache, Entry, temp_name
from hpcbridge.images.lock import HOST
from hpcbridge.images.prune import parse_age, parse_size, select_prune
from hpcbridge.images.space import check_space, mount_point

DAY = 86400.0


def entry(n: int, size: int, used: float) -> Entry:
    return Entry(f"sha256:{n:064x}", Path(f"/c/sif/{n:064x}.sif"), size, used, {})


def test_parse_size_and_age() -> None:
    assert parse_size("1024") == 1024
    assert parse_size("500M") == 500 << 20
    assert parse_size("20G") == 20 << 30
    assert parse_size("20GiB") == 20 << 30
    assert parse_size("1.5T") == int(1.5 * (1 << 40))
    assert parse_age("30d") == 30 * DAY
    assert parse_age("12h") == 12 * 3600
    assert parse_age("2w") == 14 * DAY
    assert parse_age("90") == 90
    for bad in ("lots", "-1G", ""):
        with pytest.raises(ImageError, match="invalid size"):
            parse_size(bad)
    with pytest.raises(ImageError, match="invalid age 'soon'"):
        parse_age("soon")


def test_select_prune_by_age_then_size_lru() -> None:
    now = 100 * DAY
    es = [
        entry(1, 10, now - 40 * DAY),
        entry(2, 10, now - 1 * DAY),
        entry(3, 10, now - 5 * DAY),
        entry(4, 10, now),
    ]
    assert [e.digest[-1] for e in select_prune(es, now=now, older_than=30 * DAY)] == ["1"]
    # max size keeps the most recently used that fit
    got = select_prune(es, now=now, max_size=20)
    assert [e.digest[-1] for e in got] == ["1", "3"]
    got = select_prune(es, now=now, older_than=30 * DAY, max_size=25)
    assert [e.digest[-1] for e in got] == ["1", "3"]
    assert select_prune(es, now=now) == []
    assert len(select_prune(es, now=now, max_size=0)) == 4


def test_lookup_record_and_entries(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    d = "sha256:" + "a" * 64
    assert c.lookup(d) is None
    c.sif_path(d).write_bytes(b"SIF")
    assert c.lookup(d) == c.sif_path(d)
    rec = c.ensure_record(d, source_ref="docker://x/y:1")
    assert rec["sif_sha256"] and rec["refs"] == ["docker://x/y:1"]
    rec = c.ensure_record(d, source_ref="oci:/z")
    assert rec["refs"] == ["docker://x/y:1", "oci:/z"]
    assert json.loads(c.record_path(d).read_text())["refs"] == ["docker://x/y:1", "oci:/z"]
    os.utime(c.record_path(d), (1000, 1000))
    [e] = c.entries()
    assert e.digest == d and e.size == 3 and e.last_used == 1000
    c.lookup(d)  # a hit refreshes "last used"
    assert c.entries()[0].last_used > 1000
    assert c.remove_entry(e)
    assert c.entries() == [] and not c.record_path(d).exists()


def test_remove_entry_skips_locked(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    d = "sha256:" + "b" * 64
    c.sif_path(d).write_bytes(b"x")
    lock = c.lock(d, heartbeat=0)
    assert lock.try_acquire()
    assert not c.remove_entry(c.entries()[0])
    lock.release()


def test_sweep_removes_dead_leftovers_only(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    mine = c.sif_dir / temp_name("x.sif")  # this (live) process
    dead = c.sif_dir / f".y.sif.{HOST}.999999.abcd.part"
    dead_dir = c.tmp_dir / f".convert-1.{HOST}.999999.abcd.part"
    foreign_new = c.blob_dir / ".z.otherhost.1.abcd.part"
    foreign_old = c.blob_dir / ".w.otherhost.1.abcd.part"
    for p in (mine, dead, foreign_new, foreign_old):
        p.write_bytes(b"partial")
    dead_dir.mkdir()
    (dead_dir / "rootfs").mkdir()
    os.utime(foreign_old, (0, 0))
    keep = c.sif_dir / ("c" * 64 + ".sif")
    keep.write_bytes(b"done")
    removed = set(c.sweep())
    assert removed == {dead, dead_dir, foreign_old}
    assert mine.exists() and foreign_new.exists() and keep.exists()


def test_check_space_refuses_clearly(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    check_space(c, 1, 1)
    with pytest.raises(ImageError) as err:
        check_space(c, 1 << 60, 1)
    text = str(err.value)
    assert "\n" not in text
    assert f"filesystem mounted at {mount_point(c.sif_dir)} (holding {c.sif_dir})" in text
    assert "needed" in text and "free" in text and "cache.dir" in text


def test_sweep_removes_old_unlocked_partial_downloads(tmp_path: Path) -> None:
    import fcntl

    c = Cache(tmp_path / "c")
    c.ensure()
    old, held, fresh = (c.blob_dir / f".{ch * 64}.partial" for ch in "abc")
    for p in (old, held, fresh):
        p.write_bytes(b"x" * 10)
        p.with_name(p.name + ".json").write_text("{}")
    for p in (old, held):
        os.utime(p, (0, 0))
    fd = os.open(held, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a download resuming it right now
    try:
        assert old in c.sweep()
    finally:
        os.close(fd)
    assert not old.exists() and not old.with_name(old.name + ".json").exists()
    assert held.exists() and fresh.exists()


def test_shared_cache_dirs_are_setgid_group_writable(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c", shared=True)
    c.ensure()
    for d in (c.sif_dir, c.locks_dir, c.refs_dir):
        mode = d.stat().st_mode
        assert mode & 0o2000 and mode & 0o020, oct(mode)
    d = "sha256:" + "d" * 64
    c.sif_path(d).write_bytes(b"x")
    c.ensure_record(d, source_ref="r")
    assert c.record_path(d).stat().st_mode & 0o040


def test_unknown_group_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cache group 'no-such-group-xyz' does not exist"):
        Cache(tmp_path / "c", group="no-such-group-xyz").ensure()


def test_resolutions(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    assert c.load_resolution("r:1|linux/amd64") is None
    c.save_resolution("r:1|linux/amd64", "sha256:" + "e" * 64, ref="docker://r:1")
    got = c.load_resolution("r:1|linux/amd64")
    assert got is not None and got["digest"] == "sha256:" + "e" * 64


def test_sweep_breaks_stale_locks_but_not_live_ones(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    c.ensure()
    dead = c.locks_dir / ("1" * 64 + ".lock")
    dead.write_text(json.dumps({"host": HOST, "pid": 999999, "time": 0, "token": "x"}))
    live = c.lock("sha256:" + "2" * 64, heartbeat=0)
    assert live.try_acquire()
    assert dead in c.sweep()
    assert not dead.exists() and live.path.exists()
    live.release()
