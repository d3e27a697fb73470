"""Faults on the real testbed: the controller stopped mid-watch and during submit,
a submit killed right after sbatch accepted the job, 10 concurrent submits.

The controller is stopped by its recorded PID (``tb.slurmctld_stopped()``, under the
testbed lock, inside a ``tb.reconfigure()`` block so no other pytest session restarts
Slurm meanwhile); nothing is killed by name.  Instead of sleeping through an outage
the tests wait for what shows it was met: the Slurm clients hpcbridge runs go through
logging wrappers (:func:`client_log`), so a test knows when a query or a submission
has failed against the stopped controller.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job, wait_until

pytestmark = pytest.mark.testbed

# Slurm clients themselves wait ~18 s for a controller that does not answer.
OUTAGE_SEEN = 180.0

LOGGED = """\
#!/bin/sh
{real} "$@"; rc=$?
printf '%s %s %s\\n' "$(date +%s.%N)" {name} "$rc" >> {log}
exit $rc
"""


def client_log(b: Bridge) -> tuple[dict[str, str], Path]:
    """PATH with wrappers logging ``<end epoch> <command> <exit code>`` of every Slurm client."""
    log = b.write("clients.log", "")
    b.mkdir("logged-bin")
    for name in ("sbatch", "squeue", "sacct", "scontrol", "sacctmgr"):
        real = shutil.which(name, path=b.tb.env["PATH"])  # the cluster's own client
        b.write(f"logged-bin/{name}", LOGGED.format(name=name, log=log, real=real), 0o755)
    return {"PATH": f"{b.dir / 'logged-bin'}:{b.tb.env['PATH']}"}, log


def client_calls(log: Path) -> list[tuple[float, str, int]]:
    """The finished client calls: (end time, command, exit code)."""
    out = []
    for line in log.read_text().splitlines():
        ended, name, rc = line.split()
        out.append((float(ended), name, int(rc)))
    return out


def failed_since(log: Path, since: float, names: tuple[str, ...]) -> bool:
    """A call of one of ``names`` ended after ``since`` and failed."""
    return any(t > since and n in names and rc != 0 for t, n, rc in client_calls(log))


def test_watch_survives_a_controller_restart(cluster: Testbed) -> None:
    testbed = cluster
    with testbed.reconfigure():
        b = Bridge(testbed, "ctld-watch")
        job = busybox_job(b, "survivor", "sleep 20; echo {task}", array="0-39")
        sub = b.submit(job)["id"]
        env, log = client_log(b)
        out: dict[str, object] = {}

        def watch() -> None:
            done = b.run("watch", sub, "--interval", "1", env=env, timeout=600)
            out["rc"], out["stdout"] = done.returncode, done.stdout

        t = threading.Thread(target=watch)
        t.start()
        wait_until(lambda: client_calls(log) != [], 120, "the watch's first scheduler query")
        with testbed.slurmctld_stopped():
            stopped = time.time()
            # (not sacct: with accounting off it fails at once, controller or not)
            wait_until(
                lambda: failed_since(log, stopped, ("squeue",)), OUTAGE_SEEN, "a failed query"
            )
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
        with testbed.slurmctld_stopped():
            failed = b.run("submit", str(job), timeout=300)
        assert failed.returncode == 5, failed.stdout + failed.stderr
        assert "cannot be reached" in failed.stderr and "Traceback" not in failed.stderr
        assert b.records() == []  # nothing recorded as submitted

        env, log = client_log(b)
        result: dict[str, object] = {}

        def submit() -> None:
            done = b.run("submit", str(job), "--retry", "5", env=env, timeout=600)
            result["rc"], result["out"] = done.returncode, done.stdout + done.stderr

        t = threading.Thread(target=submit)
        with testbed.slurmctld_stopped():
            stopped = time.time()
            t.start()
            clients = ("sbatch", "squeue", "scontrol")  # sacct/sacctmgr fail without accounting
            wait_until(lambda: failed_since(log, stopped, clients), OUTAGE_SEEN, "a failed try")
        t.join(600)
        assert result.get("rc") == 0, result
        assert "retrying" in str(result["out"])
        records = b.records()
        assert len(records) == 1 and records[0]["state"] == "submitted"
        assert b.run("watch", records[0]["id"], "--interval", "1").returncode == 0


KILLER = """\
#!/bin/sh
# sbatch succeeds, then the submitting hpcbridge dies before it records the job id
out=$({real} "$@"); rc=$?
echo "$out"
kill -9 $PPID
exit $rc
"""


def test_killed_after_sbatch_is_reconciled(cluster: Testbed) -> None:
    testbed = cluster
    b = Bridge(testbed, "reconcile")
    job = busybox_job(b, "orphan", "echo {task}", array="0-4")
    b.mkdir("killer")
    real = shutil.which("sbatch", path=testbed.env["PATH"])
    b.write("killer/sbatch", KILLER.format(real=real), 0o755)
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
