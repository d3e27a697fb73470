"""Facts of Slurm 26.05's squeue: ``--only-job-state`` and what a rate-limited client sees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.testbed import fixtures
from tests.testbed.api import Testbed


@pytest.fixture
def tb(request: pytest.FixtureRequest) -> Testbed:
    return fixtures.cluster_for(request.config, "26.05")


@pytest.fixture
def work(tb: Testbed) -> Path:
    return tb.user_dir("slurm2605-squeue")


def _squeue(tb: Testbed, *args: str) -> tuple[int, str, str]:
    done = tb.run_as_user(["squeue", *args], check=False)
    return done.returncode, done.stdout, done.stderr


def _wait_running(tb: Testbed, job: str) -> None:
    deadline = time.monotonic() + 300
    while _squeue(tb, "-h", "-o", "%T", "-j", job)[1].strip() != "RUNNING":
        assert time.monotonic() < deadline, f"job {job} never ran"
        time.sleep(0.5)


def test_only_job_state_output(tb: Testbed, work: Path) -> None:
    done_job = tb.sbatch("-o", "/dev/null", "--wrap", "true", cwd=work)
    tb.wait_for_jobs([done_job], timeout=300)
    running = tb.sbatch("-o", "/dev/null", "--wrap", "sleep 300", cwd=work)
    array = tb.sbatch("--array=0-1", "--hold", "-o", "/dev/null", "--wrap", "true", cwd=work)
    held = tb.sbatch("--hold", "-o", "/dev/null", "--wrap", "true", cwd=work)
    try:
        _wait_running(tb, running)
        rc, out, _ = _squeue(tb, "--only-job-state", "-j", f"{running},{array},{held}")
        assert rc == 0
        lines = out.splitlines()
        assert lines[0].split() == ["JOBID", "ST"]
        rows = dict(line.split() for line in lines[1:])
        assert rows == {running: "R", f"{array}_[0-1]": "PD", held: "PD"}
        # printing options work; only JobID and State are filled in (Reason says None)
        rc, out, _ = _squeue(tb, "--only-job-state", "-h", "-o", "%i|%T|%r", "-j", held)
        assert (rc, out) == (0, f"{held}|PENDING|None\n")
        # finished jobs need -t all, as with plain squeue
        assert _squeue(tb, "--only-job-state", "-h", "-j", done_job)[:2] == (0, "")
        rc, out, _ = _squeue(
            tb, "--only-job-state", "-h", "-t", "all", "-o", "%i|%T", "-j", done_job
        )
        assert (rc, out) == (0, f"{done_job}|COMPLETED\n")
        # an unknown id: empty answer, exit 0 (plain squeue -j fails)
        assert _squeue(tb, "--only-job-state", "-h", "-j", "99")[:2] == (0, "")
        rc, _, err = _squeue(tb, "-h", "-j", "99")
        assert (rc, err.strip()) == (1, "slurm_load_jobs error: Invalid job id specified")
        # it refuses -u
        rc, _, err = _squeue(tb, "--only-job-state", "-u", tb.user.name)
        assert rc == 1
        assert err.strip() == (
            "squeue: fatal: Option --only-job-state only works alone, with -j (--jobs) "
            "and/or -t (--states) parameters, parameters for cluster/federation selection, "
            "and the printing options."
        )
    finally:
        tb.run(["scancel", running, array, held], check=False)


def test_a_throttled_client_sleeps_and_retries_silently(tb: Testbed) -> None:
    """rl_enable: over the bucket, slurmctld answers SLURMCTLD_COMMUNICATIONS_BACKOFF; the
    26.05 client sleeps 1, 2, 3... s and retries, printing nothing unless -v, exit 0.
    "Rate limit exceeded, please retry momentarily" (the errno's text) never shows."""
    assert tb.knobs.rate_limit and tb.knobs.rl_bucket_size == 30
    before = len(tb.rate_limit_events())
    script = (
        "for i in $(seq 45); do squeue -v -h -o %i >/dev/null 2>>err.txt "
        "|| echo fail >> err.txt; done; cat err.txt; rm -f err.txt"
    )
    home = tb.user_dir("flood")
    done = tb.run_as_user(["sh", "-c", script], cwd=home, timeout=600)
    assert "fail" not in done.stdout.split()
    throttled = [ln for ln in done.stdout.splitlines() if "rate limit" in ln.lower()]
    assert throttled, done.stdout[-2000:]
    assert set(throttled) <= {
        f"squeue: RPC rate limited {n} time(s). Sleeping then trying again." for n in range(1, 9)
    }
    assert "Rate limit exceeded" not in done.stdout
    # other RPCs of earlier tests may be logged in the same window: look at squeue's own
    # (it asks for jobs and for partitions; either may be the one throttled)
    events = tb.rate_limit_events()[before:]
    mine = [
        e
        for e in events
        if any(
            f"RPC rate limit exceeded by uid {tb.user.uid} with {rpc} from 127.0.0.1:" in e
            for rpc in ("REQUEST_JOB_INFO", "REQUEST_PARTITION_INFO")
        )
    ]
    assert mine, events[-5:]
    assert all(e.endswith(", telling to back off") for e in mine)
    # root is never throttled
    assert tb.rate_limit_events(uid=0) == []
