"""Polite polling on both Slurm releases, proven with counting wrappers placed first on
PATH around every Slurm client (they log start, end, exit code and arguments of each
call): three separate ``watch`` processes of three submissions, with ``status``
running beside them, cost ONE scheduler query per poll cycle, and that query is
``squeue --only-job-state`` on 26.05 (plain ``squeue -j`` on 22.05) naming every
watched job; five concurrent ``status`` within the interval cause one query."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hpcbridge.tracking.pollplan import PACE_FACTOR
from tests.testbed.api import Testbed
from tests.testbed.test_track_support import (
    Bridge,
    Call,
    busybox_job,
    lowest_bucket,
    read_calls,
    wait_until,
)

pytestmark = pytest.mark.testbed


def follow_three(b: Bridge, env: dict[str, str], log: Path, sleep: int = 12) -> dict[str, Any]:
    """Three submissions, three ``watch`` processes, ``status`` in a loop beside them and
    one more ``submit`` while they run."""
    ids = [
        b.submit(busybox_job(b, f"w{n}", f"sleep {sleep}; echo {{task}}", array="0-5"))["id"]
        for n in range(3)
    ]
    out: dict[str, Any] = {"watch": {}, "status": []}
    stop = threading.Event()

    def watch(sub: str) -> None:
        done = b.run("watch", sub, "--interval", "1", env=env, timeout=600)
        out["watch"][sub] = done

    def status() -> None:
        while not stop.is_set():
            out["status"].append(b.run("status", *ids, env=env))
            time.sleep(0.3)

    watchers = [threading.Thread(target=watch, args=(i,)) for i in ids]
    beside = threading.Thread(target=status)
    for t in [*watchers, beside]:
        t.start()
    wait_until(lambda: any(c.is_query for c in read_calls(log)), 120, "the first poll")
    late = busybox_job(b, "late", "echo {task}", array="0-1")
    out["submit"] = b.run("submit", str(late), env=env)
    for t in watchers:
        t.join(600)
    stop.set()
    beside.join(120)
    out["ids"] = ids
    return out


def job_ids_of(b: Bridge, sub_ids: list[str]) -> set[str]:
    return {str(c["job_id"]) for r in b.records() if r["id"] in sub_ids for c in r["chunks"]}


def assert_one_query_per_cycle(queries: list[Call], jobs: set[str], release: str) -> None:
    """After the watchers joined (one query each, for the union so far), the queries are
    at least the 1 s interval apart and each names every watched job."""
    assert queries, "no query at all"
    joined = next(n for n, q in enumerate(queries) if jobs <= set(_ids(q)))
    assert joined <= 2, queries[:4]  # at most one query per watcher while they joined
    steady = queries[joined:]
    for q in steady:
        assert q.name == "squeue", q  # accounting is off: sacct is never asked
        assert jobs <= set(_ids(q)), (q, jobs)
        assert ("--only-job-state" in q.args.split()) == (release == "26.05"), q
        assert "-u" not in q.args.split()
    for a, b in zip(steady, steady[1:]):
        # never two queries within one interval; after a slow answer (a loaded or
        # rate-limiting controller) at least PACE_FACTOR times its duration
        assert b.start - a.start >= max(0.8, 0.95 * PACE_FACTOR * a.took), (a, b)
    span = steady[-1].start - steady[0].start
    assert len(steady) <= span / 0.9 + 1, (len(steady), span)


def _ids(q: Call) -> list[str]:
    words = q.args.split()
    return words[words.index("-j") + 1].split(",") if "-j" in words else []


def test_three_watchers_and_status_share_one_query_per_cycle(cluster: Testbed) -> None:
    b = Bridge(cluster, "poll-three")
    env, log = b.counting_path()
    got = follow_three(b, env, log)
    for sub, done in got["watch"].items():
        assert done.returncode == 0, (sub, done.stdout, done.stderr)
        assert "6/6 finished" in done.stdout.splitlines()[-1]
    assert got["status"] and all(s.returncode == 0 for s in got["status"])
    assert got["submit"].returncode == 0, got["submit"].stderr
    every = [*got["watch"].values(), *got["status"], got["submit"]]
    assert not [d.stderr for d in every if "rate limit" in (d.stdout + d.stderr).lower()]
    calls = read_calls(log)
    # what these processes asked of slurmctld fits a default per-user bucket (rl_enable:
    # 30 tokens, +2 a second); on 26.05 the cluster enforces it
    assert lowest_bucket(calls, 30, 2.0) > 0, calls
    assert not [c for c in calls if c.name == "scontrol"]  # limits come from the cache
    queries = [c for c in calls if c.is_query]
    assert_one_query_per_cycle(queries, job_ids_of(b, got["ids"]), cluster.release)
    assert [c for c in calls if c.args.strip() == "--version"][:1], "release never detected"
    assert len([c for c in calls if c.args.strip() == "--version"]) == 1  # detected once
    assert len(b.records()) == 4 and {r["state"] for r in b.records()} == {"submitted"}


def test_five_concurrent_status_share_one_query(cluster: Testbed) -> None:
    b = Bridge(cluster, "poll-status", interval=30.0)
    job = busybox_job(b, "long", "sleep 60", array="0-1")
    sub = b.submit(job)["id"]
    env, log = b.counting_path()
    results: list[int] = []

    def one() -> None:
        results.append(b.run("status", sub, env=env).returncode)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results == [0] * 5
    queries = [c for c in read_calls(log) if c.is_query]
    assert len(queries) == 1, queries
    b.ok("cancel", sub)


def test_a_started_task_is_running_in_status(cluster: Testbed) -> None:
    """The shared answer may predate a task's start: its start file says it runs."""
    b = Bridge(cluster, "poll-started", interval=30.0)
    b.mkdir("out")
    job = busybox_job(b, "go", "touch /out/{task}; sleep 60", array="0-1", binds=("out:/out",))
    sub = b.submit(job)["id"]
    first = b.status(sub)  # taken at once: both tasks may still be pending in it
    assert first["counts"].get("PENDING", 0) + first["counts"].get("RUNNING", 0) == 2
    out: Path = b.dir / "out"
    deadline = time.monotonic() + 300
    while not ((out / "0").exists() and (out / "1").exists()):
        assert time.monotonic() < deadline, "tasks never started"
        time.sleep(0.5)
    # within the 30 s interval the cached answer is reused; the start files decide
    st = b.status(sub)
    assert st["counts"] == {"RUNNING": 2}, st
    b.ok("cancel", sub)
