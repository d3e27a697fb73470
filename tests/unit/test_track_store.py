"""The state store and the shared poll cache, on the local file system.

The poll cache is exercised with a recording stand-in for the scheduler: it
checks the cache's own logic (freshness, coverage, shared errors); that it
really saves scheduler queries is shown on the testbed with counting wrappers
around squeue/sacct (tests/testbed/test_track_polling.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import pytest

from hpcbridge.errors import SchedulerUnavailable, StateError
from hpcbridge.scheduler import slurm
from hpcbridge.scheduler.base import ClusterLimits, QueryResult, Submitted, TrialRun
from hpcbridge.tracking.poll import Poller
from hpcbridge.tracking.record import Record
from hpcbridge.tracking.store import Store, new_id


def test_ids_are_sortable_and_unique() -> None:
    a, b = new_id(1_700_000_000), new_id(1_700_000_001)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", a)
    assert a < b
    assert len({new_id(0) for _ in range(200)}) == 200


def test_store_layout_modes_and_resolve(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    d = store.new_submission(Record())
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert (d / "outcomes").is_dir() and (d / "logs").is_dir()
    rec = store.load(d.name)
    assert json.loads((d / "record.json").read_text())["schema"] == 2
    assert rec.state == "pending" and rec.id == d.name
    assert store.resolve(d.name[:10]) == d.name
    assert store.resolve(d.name.rsplit("-", 1)[1]) == d.name
    assert store.resolve("last") == d.name
    with pytest.raises(StateError):
        store.resolve("nope")
    store.update(d.name, lambda r: setattr(r, "state", "submitted"))
    assert store.load(d.name).state == "submitted"
    with pytest.raises(StateError):
        store.write_file(d.name, "../escape", "x")


def test_corrupt_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good = store.new_submission(Record()).name
    bad = store.new_submission(Record()).name
    newer = store.new_submission(Record()).name
    (store.path(bad) / "record.json").write_text("{not json")
    (store.path(newer) / "record.json").write_text(json.dumps({"id": newer, "schema": 99}))
    assert [r.id for r in store.records()] == [good]
    with pytest.raises(StateError, match="schema 99"):
        store.load(newer)


def test_unknown_keys_survive_a_rewrite(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sub = store.new_submission(Record(name="x")).name
    path = store.path(sub) / "record.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "schema": 1, "later": {"a": 1}}))
    store.update(sub, lambda r: setattr(r, "state", "submitted"))
    again = json.loads(path.read_text())
    assert again["later"] == {"a": 1} and again["schema"] == 2 and again["state"] == "submitted"


def _writer(root: str, n: int) -> None:
    store = Store(Path(root))
    for i in range(n):
        sub = store.new_submission(Record(name=f"n{i}")).name
        for j in range(5):
            store.update(sub, lambda r, j=j: r.children.append(str(j)))


def test_concurrent_writers_never_corrupt(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_writer, args=(str(tmp_path), 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path)
    records = list(store.records())
    assert len(records) == 40 and all(r.children == ["0", "1", "2", "3", "4"] for r in records)
    leftovers = [p for p in (tmp_path / "submissions").rglob(".*.tmp")]
    assert leftovers == []


class Recording:
    """Answers from captured squeue output and counts how often it was asked."""

    name = "recording"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def submit(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> Submitted:
        raise NotImplementedError

    def test_only(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> TrialRun:
        raise NotImplementedError

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        accounting: bool,
        since: Optional[str] = None,
    ) -> QueryResult:
        self.calls += 1
        if self.fail:
            raise SchedulerUnavailable("Unable to contact slurm controller")
        return slurm.parse_squeue("5_1|6|5|1|RUNNING|None|hpcb:a.0\n")

    def limits(self, user: Optional[str] = None) -> ClusterLimits:
        self.calls += 1
        return ClusterLimits(max_array_size=77)

    def cancel(self, job_ids: Sequence[str]) -> None:
        raise NotImplementedError


def test_poll_cache_is_shared_within_the_interval(tmp_path: Path) -> None:
    sched = Recording()
    a = Poller(tmp_path, sched, user="u", min_interval=60)
    b = Poller(tmp_path, sched, user="u", min_interval=60)  # another process, same cache
    first = a.answer(["5"])
    second = b.answer(["5"])
    assert sched.calls == 1 and second.cached and second.result == first.result
    b.answer(["5", "9"])  # a job the cached answer was not asked about
    assert sched.calls == 2
    assert json.loads((tmp_path / "poll.json").read_text())["source"] == "squeue"
    short = Poller(tmp_path, sched, user="u", min_interval=0.0)
    short.answer(["5"], max_age=0.0)
    assert sched.calls == 3


def test_poll_errors_are_cached_too(tmp_path: Path) -> None:
    sched = Recording(fail=True)
    p = Poller(tmp_path, sched, user="u", min_interval=60)
    assert p.answer(["5"]).error and p.answer(["5"]).error
    assert sched.calls == 1


def test_limits_cached(tmp_path: Path) -> None:
    sched = Recording()
    p = Poller(tmp_path, sched, user="u", min_interval=1)
    assert p.limits().max_array_size == 77 and p.limits().max_array_size == 77
    assert sched.calls == 1
    assert os.stat(tmp_path / "limits.json").st_mode & 0o077 == 0
