"""Testbed knobs through ``tb.reconfigure``: accounting, memory limit, array size, nodes."""

from __future__ import annotations

import time
from pathlib import Path

from tests.testbed.api import Testbed


def _sacct(testbed: Testbed, job: str) -> dict[str, tuple[str, str]]:
    done = testbed.run_as_user(
        ["sacct", "-P", "-n", "-j", job, "-o", "JobID,State,ExitCode"], check=False
    )
    rows: dict[str, tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            rows[parts[0]] = (parts[1], parts[2])
    return rows


def _wait_sacct(
    testbed: Testbed, job: str, keys: set[str], timeout: float = 60
) -> dict[str, tuple[str, str]]:
    """slurmctld sends job records to slurmdbd asynchronously: poll until they are all there."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _sacct(testbed, job)
        if keys <= set(rows) and all(rows[k][0] not in ("PENDING", "RUNNING") for k in keys):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct has {rows}, wanted {sorted(keys)}")
        time.sleep(0.5)


def test_accounting_on_makes_sacct_answer(testbed: Testbed, user_dir: Path) -> None:
    with testbed.reconfigure(accounting=True) as tb:
        before = tb.state.get("knobs_before")
        assert tb.knobs.accounting
        conf = tb.run(["scontrol", "show", "config"]).stdout
        assert "accounting_storage/slurmdbd" in conf
        job = tb.sbatch(
            "--array=1-3",
            "-o",
            "log_%A_%a.out",
            "--wrap",
            "exit $(( SLURM_ARRAY_TASK_ID == 2 ? 3 : 0 ))",
            cwd=user_dir,
        )
        tb.wait_for_jobs([job], timeout=600)
        rows = _wait_sacct(tb, job, {f"{job}_1", f"{job}_2", f"{job}_3"})
        assert rows[f"{job}_1"] == ("COMPLETED", "0:0")
        assert rows[f"{job}_2"] == ("FAILED", "3:0")
        assert rows[f"{job}_3"] == ("COMPLETED", "0:0")
        assocs = tb.run(["sacctmgr", "-n", "-P", "list", "assoc", "format=user"]).stdout.split()
        assert tb.user.name in assocs
    assert testbed.knobs.to_dict() == before  # restored


def test_without_accounting_sacct_says_so(testbed: Testbed) -> None:
    # inside a block: the knobs lock keeps other sessions from switching accounting on meanwhile
    with testbed.reconfigure(accounting=False) as tb:
        done = tb.run_as_user(["sacct", "-n"], check=False)
        assert "Slurm accounting storage is disabled" in (done.stdout + done.stderr)


def test_mem_limit_kills_an_over_memory_task(testbed: Testbed, user_dir: Path) -> None:
    hog = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(20); print('survived')"
    with testbed.reconfigure(mem_limit=True) as tb:
        before = tb.state.get("knobs_before")
        big = tb.sbatch("--mem=64M", "-o", "big.out", "--wrap", f'python3 -c "{hog}"', cwd=user_dir)
        small = tb.sbatch("--mem=64M", "-o", "small.out", "--wrap", "echo fine", cwd=user_dir)
        states = tb.wait_for_jobs([big, small], timeout=600)
        shown = tb.run(["scontrol", "-o", "show", "job", big]).stdout
        out = (user_dir / "big.out").read_text()
        assert "survived" not in out
        if tb.knobs.cgroups:  # 26.05: the kernel kills in the step's memory cgroup
            assert states == {big: "OUT_OF_MEMORY", small: "COMPLETED"}
            assert "ExitCode=0:125" in shown
            assert f"Detected 1 oom_kill event in StepId={big}.batch" in out
        else:  # jobacct_gather's OverMemoryKill, SIGKILL: no OUT_OF_MEMORY state
            assert states == {big: "FAILED", small: "COMPLETED"}
            assert "ExitCode=0:9" in shown
            assert "Exceeded job memory limit" in out
    assert testbed.knobs.to_dict() == before


def test_max_array_size_knob(testbed: Testbed, user_dir: Path) -> None:
    with testbed.reconfigure(max_array_size=11) as tb:
        before = tb.state.get("knobs_before")
        conf = tb.run(["scontrol", "show", "config"]).stdout
        assert any(line.split() == ["MaxArraySize", "=", "11"] for line in conf.splitlines())
        refused = tb.run_as_user(
            ["sbatch", "--array=0-11", "--wrap", "true"], cwd=user_dir, check=False
        )
        assert refused.returncode != 0
        assert "Invalid job array specification" in refused.stderr
        job = tb.sbatch("--array=0-10", "-o", "/dev/null", "--wrap", "true", cwd=user_dir)
        assert len(tb.wait_for_jobs([job], timeout=600)) == 11
    assert testbed.knobs.to_dict() == before


def test_small_min_job_age_makes_squeue_forget(testbed: Testbed, user_dir: Path) -> None:
    with testbed.reconfigure(min_job_age=2) as tb:
        job = tb.sbatch("-o", "/dev/null", "--wrap", "true", cwd=user_dir)
        tb.wait_for_jobs([job], timeout=600)
        deadline = time.monotonic() + 90
        while True:
            done = tb.run(["scontrol", "show", "job", job], check=False)
            if done.returncode != 0 and "Invalid job id" in done.stderr:
                break
            assert time.monotonic() < deadline, "job not purged within 90 s with MinJobAge=2"
            time.sleep(1)


def test_nodes_knob_and_a_job_surviving_the_restart(testbed: Testbed, user_dir: Path) -> None:
    running = testbed.sbatch("-o", "survivor.out", "--wrap", "sleep 6; echo survived", cwd=user_dir)
    with testbed.reconfigure(nodes=3) as tb:
        before = tb.state.get("knobs_before")
        assert tb.nodes == ["n1", "n2", "n3"]
        done = tb.run_as_user(["srun", "-N3", "-n3", "hostname"], cwd=user_dir, timeout=600)
        assert sorted(done.stdout.split()) == ["n1", "n2", "n3"]
    assert testbed.knobs.to_dict() == before
    assert testbed.nodes == [f"n{i}" for i in range(1, testbed.knobs.nodes + 1)]
    assert testbed.wait_for_jobs([running], timeout=600) == {running: "COMPLETED"}
    assert (user_dir / "survivor.out").read_text().strip() == "survived"
