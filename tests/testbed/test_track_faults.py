"""Faults on the real testbed: the controller stopped mid-watch and during submit,
a submit killed right after sbatch accepted the job, 10 concurrent submits.

The testbed API has no stop/start of slurmctld, so these tests use its PID
registry (``PidRegistry.stop("slurmctld")`` stops the recorded PID) and
``slurm.start_slurmctld``, inside a ``tb.reconfigure()`` block so no other
pytest session restarts Slurm meanwhile.  Nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import config as C
from tests.testbed import lifecycle
from tests.testbed import slurm as tb_slurm
from tests.testbed.api import Testbed
from tests.testbed.procs import PidRegistry
from tests.testbed.test_track_support import Bridge, busybox_job, wait_until

pytestmark = pytest.mark.testbed


def stop_controller(tb: Testbed) -> None:
    assert PidRegistry(tb.state_dir).stop("slurmctld"), "slurmctld was not running"


def start_controller(tb: Testbed) -> None:
    layout = C.Layout(tb.state_dir)
    tb_slurm.start_slurmctld(layout, PidRegistry(tb.state_dir))


@contextlib.contextmanager
def controller_down(tb: Testbed) -> Iterator[None]:
    """slurmctld stopped for the block; the testbed lock keeps other pytest sessions
    (whose fixture restarts missing daemons) from restarting it meanwhile."""
    with lifecycle.flock(C.Layout(tb.state_dir).lock):
        stop_controller(tb)
        try:
            yield
        finally:
            start_controller(tb)


def test_watch_survives_a_controller_restart(testbed: Testbed) -> None:
    with testbed.reconfigure():
        b = Bridge(testbed, "ctld-watch")
        job = busybox_job(b, "survivor", "sleep 20; echo {task}", array="0-39")
        sub = b.submit(job)["id"]
        out: dict[str, object] = {}

        def watch() -> None:
            done = b.run("watch", sub, "--interval", "1", timeout=600)
            out["rc"], out["stdout"] = done.returncode, done.stdout

        t = threading.Thread(target=watch)
        t.start()
        time.sleep(3)
        with controller_down(testbed):
            time.sleep(40)  # Slurm clients themselves wait ~18 s for the controller
        t.join(600)
        assert out.get("rc") == 0, out
        assert "scheduler not reachable" in str(out["stdout"])
        assert "40/40 finished" in str(out["stdout"]).splitlines()[-1]
        st = b.status(sub)
        assert st["counts"] == {"COMPLETED": 40}
        assert [r["id"] for r in b.records()] == [sub]


def test_submit_with_the_controller_down(testbed: Testbed) -> None:
    with testbed.reconfigure():
        b = Bridge(testbed, "ctld-submit")
        job = busybox_job(b, "later", "echo {task}", array="0-3")
        b.ok("submit", "--dry-run", str(job))  # converts the image before the outage
        with controller_down(testbed):
            failed = b.run("submit", str(job), timeout=300)
        assert failed.returncode == 5, failed.stdout + failed.stderr
        assert "cannot be reached" in failed.stderr and "Traceback" not in failed.stderr
        assert b.records() == []  # nothing recorded as submitted

        result: dict[str, object] = {}

        def submit() -> None:
            done = b.run("submit", str(job), "--retry", "5", timeout=600)
            result["rc"], result["out"] = done.returncode, done.stdout + done.stderr

        t = threading.Thread(target=submit)
        with controller_down(testbed):
            t.start()
            time.sleep(25)  # the first attempts fail
        t.join(600)
        assert result.get("rc") == 0, result
        assert "retrying" in str(result["out"])
        records = b.records()
        assert len(records) == 1 and records[0]["state"] == "submitted"
        assert b.run("watch", records[0]["id"], "--interval", "1").returncode == 0


KILLER = """\
#!/bin/sh
# sbatch succeeds, then the submitting hpcbridge dies before it records the job id
out=$(/usr/bin/sbatch "$@"); rc=$?
echo "$out"
kill -9 $PPID
exit $rc
"""


def test_killed_after_sbatch_is_reconciled(testbed: Testbed) -> None:
    b = Bridge(testbed, "reconcile")
    job = busybox_job(b, "orphan", "echo {task}", array="0-4")
    b.mkdir("killer")
    b.write("killer/sbatch", KILLER, 0o755)
    env = {"PATH": f"{b.dir / 'killer'}:{testbed.env['PATH']}"}
    died = b.run("submit", str(job), env=env)
    assert died.returncode != 0
    records = b.records()
    assert len(records) == 1 and records[0]["state"] == "pending"
    assert records[0]["chunks"][0]["job_id"] is None
    sub = records[0]["id"]
    watched = b.run("watch", sub, "--interval", "1", timeout=300)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    rec = b.records()[0]
    assert rec["state"] == "submitted" and rec["chunks"][0]["job_id"]
    assert rec["chunks"][0].get("reconciled") is True
    assert b.status(sub)["counts"] == {"COMPLETED": 5}
    assert len(b.records()) == 1  # not duplicated


def test_ten_concurrent_submits(testbed: Testbed) -> None:
    b = Bridge(testbed, "concurrent")
    job = busybox_job(b, "many", "echo {task}", array="0-1")
    b.ok("submit", "--dry-run", str(job))  # the image is converted once, before
    codes: list[int] = []

    def one() -> None:
        codes.append(b.run("submit", str(job), "--json").returncode)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert codes == [0] * 10
    records = b.records()
    assert len(records) == 10
    assert len({r["id"] for r in records}) == 10
    jobs = {c["job_id"] for r in records for c in r["chunks"]}
    assert len(jobs) == 10 and None not in jobs
    for r in records:
        assert r["state"] == "submitted"
        d = b.state / "submissions" / r["id"]
        assert (d / "job-0.sh").read_text().startswith("#!")
        json.loads((d / "record.json").read_text())
    ids = [r["id"] for r in records]
    wait_until(lambda: b.run("watch", *ids, "--interval", "1").returncode == 0, 300, "all complete")
    leftovers = list(Path(b.state).rglob(".*.tmp"))
    assert leftovers == []
