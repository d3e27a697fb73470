"""cancel --tasks, logs [--follow], rerun, submit --dry-run and list on both Slurm releases."""

from __future__ import annotations

import json
import threading

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job, wait_until

pytestmark = pytest.mark.testbed


def test_cancel_some_tasks_then_the_rest(cluster: Testbed) -> None:
    b = Bridge(cluster, "cancel")
    job = busybox_job(b, "slow", "sleep 120", array="0-7")
    sub = b.submit(job)["id"]
    wait_until(lambda: b.status(sub)["counts"].get("RUNNING", 0) >= 1, 300, "tasks running")
    done = b.ok("cancel", sub, "--tasks", "3,5-6")
    assert "tasks 3,5-6" in done.stdout and "_[3,5-6]" in done.stdout
    wait_until(lambda: b.status(sub)["counts"].get("CANCELLED") == 3, 120, "3 cancelled")
    st = b.status(sub)
    assert {f["task"] for f in st["failed"]} == {3, 5, 6}
    assert st["counts"].get("RUNNING", 0) + st["counts"].get("PENDING", 0) == 5
    b.ok("cancel", sub)
    wait_until(lambda: b.status(sub)["done"], 120, "all cancelled")
    assert b.status(sub)["counts"] == {"CANCELLED": 8}
    assert b.run("watch", sub, "--interval", "1").returncode == 1
    bad = b.run("cancel", sub, "--tasks", "99")
    assert bad.returncode == 3 and "task 99 is not part of" in bad.stderr


def test_logs_and_follow(cluster: Testbed) -> None:
    b = Bridge(cluster, "logs")
    job = busybox_job(
        b, "talk", "for i in 1 2 3; do echo line-$i-of-{task}; sleep 2; done", array="0-1"
    )
    sub = b.submit(job)["id"]
    followed: dict[str, str] = {}

    def follow() -> None:
        followed["out"] = b.run("logs", sub, "--task", "1", "--follow", timeout=300).stdout

    t = threading.Thread(target=follow)
    t.start()
    t.join(300)
    assert followed["out"].splitlines() == ["line-1-of-1", "line-2-of-1", "line-3-of-1"]
    assert b.ok("logs", sub).stdout.splitlines()[0] == "line-1-of-0"
    assert b.run("logs", sub, "--task", "7").returncode == 3


def test_rerun_is_identical_but_for_the_id(cluster: Testbed) -> None:
    b = Bridge(cluster, "rerun")
    job = busybox_job(b, "again", "echo {task}", array="0-2")
    dry = b.ok("submit", "--dry-run", str(job)).stdout
    assert dry == b.ok("render", str(job)).stdout  # --dry-run prints what render prints
    assert b.records() == []
    first = b.submit(job)["id"]
    watched = b.run("watch", first, "--interval", "0.2")
    assert watched.returncode == 0
    assert "below the site minimum polling.min_interval = 1 s; using 1 s" in watched.stderr
    second = b.json("rerun", first)
    assert second["parent"] == first and second["kind"] == "rerun"
    assert b.run("watch", second["id"], "--interval", "1").returncode == 0
    s1 = (b.state / "submissions" / first / "job-0.sh").read_text()
    s2 = (b.state / "submissions" / second["id"] / "job-0.sh").read_text()
    assert s1 != s2 and s1.replace(first, second["id"]) == s2
    r1, r2 = (
        json.loads((b.state / "submissions" / i / "record.json").read_text())
        for i in (first, second["id"])
    )
    assert r1["image"] == r2["image"] and r1["job"] == r2["job"]
    assert r1["config"] == r2["config"] and r1["children"] == [second["id"]]
    listed = b.json("list")["submissions"]
    assert [x["id"] for x in listed] == [first, second["id"]]
