"""Polite polling, proven with counting wrappers around squeue/sacct/scontrol placed
first on PATH: one scheduler query per poll cycle while watching 3 submissions,
and 5 concurrent ``status`` within the interval cause one query."""

from __future__ import annotations

import threading

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job, read_calls

pytestmark = pytest.mark.testbed

QUERIES = ("squeue", "sacct")


def test_one_query_per_cycle_watching_three_submissions(testbed: Testbed) -> None:
    b = Bridge(testbed, "poll-watch")
    ids = []
    for n in range(3):
        job = busybox_job(b, f"w{n}", "sleep 3; echo {task}", array="0-19")
        ids.append(b.submit(job)["id"])
    env, log = b.counting_path()
    watched = b.run("watch", *ids, "--interval", "1", env=env, timeout=600)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    # plain output (not a terminal): one line per submission per cycle
    cycle_lines = [line for line in watched.stdout.splitlines() if "finished" in line]
    cycles = len(cycle_lines) // 3
    calls = read_calls(log)
    queries = [c for c in calls if c[1] in QUERIES]
    assert cycles >= 2, watched.stdout
    assert 1 <= len(queries) <= cycles, (len(queries), cycles, calls)
    assert not [c for c in calls if c[1] == "scontrol"]  # limits come from the cache
    # never two queries within one interval (the floor here is 1 s)
    stamps = [c[0] for c in queries]
    assert all(b2 - a2 >= 0.9 for a2, b2 in zip(stamps, stamps[1:])), stamps
    # one call for the user's jobs, not one per job
    for _, name, args in queries:
        assert name == "sacct" or "-u" in args.split()


def test_five_concurrent_status_share_one_query(testbed: Testbed) -> None:
    b = Bridge(testbed, "poll-status", interval=30.0)
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
    queries = [c for c in read_calls(log) if c[1] in QUERIES]
    assert len(queries) == 1, queries
    b.ok("cancel", sub)
