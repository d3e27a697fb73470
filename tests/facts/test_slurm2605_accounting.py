"""Facts of Slurm 26.05 with accounting and cgroup memory limits: OUT_OF_MEMORY from the
kernel's OOM killer in the job's memory cgroup, MaxRSS in sacct, SLUID in sacct --json."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import fixtures
from tests.testbed.api import Testbed

# a task that holds ~400 MB: tail keeps all of a newline-free input in memory
HOG = "head -c 400M /dev/zero | tail > /dev/null"


@pytest.fixture(scope="module")
def tb(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    cluster = fixtures.cluster_for(request.config, "26.05")
    if not cluster.knobs.cgroups:
        pytest.fail(f"no cgroups on the 26.05 cluster: {cluster.slurm_facts}")
    with cluster.reconfigure(accounting=True, mem_limit=True) as on:
        yield on


@pytest.fixture
def work(tb: Testbed) -> Path:
    return tb.user_dir("slurm2605-acct")


def _sacct(tb: Testbed, job: str, fields: str, *extra: str) -> dict[str, list[str]]:
    done = tb.run_as_user(["sacct", "-P", "-n", "-j", job, "-o", fields, *extra], check=False)
    return {row.split("|")[0]: row.split("|")[1:] for row in done.stdout.splitlines() if row}


def _wait_sacct(tb: Testbed, job: str, keys: set[str], fields: str) -> dict[str, list[str]]:
    """slurmctld sends records to slurmdbd asynchronously: poll until all are final."""
    deadline = time.monotonic() + 120
    while True:
        rows = _sacct(tb, job, fields)
        if keys <= set(rows) and all(rows[k][0] not in ("PENDING", "RUNNING") for k in keys):
            return rows
        assert time.monotonic() < deadline, f"sacct has {rows}, wanted {sorted(keys)}"
        time.sleep(0.5)


def _kib(value: str) -> float:
    units = {"K": 1, "M": 1024, "G": 1024 * 1024}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value) / 1024


def test_over_memory_task_is_out_of_memory_with_max_rss(tb: Testbed, work: Path) -> None:
    conf = tb.run(["scontrol", "show", "config"]).stdout
    assert re.search(r"^TaskPlugin\s+= task/cgroup$", conf, re.M)
    assert re.search(r"^ProctrackType\s+= proctrack/cgroup$", conf, re.M)
    job = tb.sbatch("--mem=100M", "-o", "out.txt", "--wrap", f"{HOG}; echo after", cwd=work)
    assert tb.wait_for_jobs([job], timeout=300) == {job: "OUT_OF_MEMORY"}
    shown = tb.run(["scontrol", "-o", "show", "job", job]).stdout
    assert "JobState=OUT_OF_MEMORY Reason=OutOfMemory" in shown
    assert "ExitCode=0:125" in shown
    out = (work / "out.txt").read_text().splitlines()
    # only the hog was killed (the shell says "Killed"), the script went on; slurmstepd's
    # line comes last
    assert out[-3:-1] == ["Killed", "after"], out
    assert out[-1].endswith(
        f"] error: Detected 1 oom_kill event in StepId={job}.batch. "
        "Some of the step tasks have been OOM Killed."
    )
    rows = _wait_sacct(tb, job, {job, f"{job}.batch"}, "JobID,State,ExitCode,ReqMem,MaxRSS")
    assert rows[job][:3] == ["OUT_OF_MEMORY", "0:125", "100M"]
    state, code, _, max_rss = rows[f"{job}.batch"]
    assert (state, code) == ("OUT_OF_MEMORY", "0:125")
    assert 90 * 1024 <= _kib(max_rss) <= 110 * 1024  # the cgroup limit, 100 MiB


def test_one_array_task_over_memory(tb: Testbed, work: Path) -> None:
    job = tb.sbatch(
        "--array=1-3",
        "--mem=64M",
        "-o",
        "log_%a.txt",
        "--wrap",
        f'[ "$SLURM_ARRAY_TASK_ID" != 2 ] || {HOG}',
        cwd=work,
    )
    states = tb.wait_for_jobs([job], timeout=300)
    assert states == {f"{job}_1": "COMPLETED", f"{job}_2": "OUT_OF_MEMORY", f"{job}_3": "COMPLETED"}
    row = tb.run_as_user(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r", "-j", f"{job}_2"])
    assert row.stdout.strip() == f"{job}_2|OUT_OF_MEMORY|OutOfMemory"
    rows = _wait_sacct(tb, job, {f"{job}_2", f"{job}_2.batch"}, "JobID,State,ExitCode,MaxRSS")
    assert rows[f"{job}_2"][:2] == ["OUT_OF_MEMORY", "0:125"]
    assert _kib(rows[f"{job}_2.batch"][2]) >= 50 * 1024


def test_sacct_json_has_a_sluid_that_changes_on_requeue(tb: Testbed, work: Path) -> None:
    job = tb.sbatch("-o", "/dev/null", "--wrap", "sleep 300", cwd=work)
    try:
        deadline = time.monotonic() + 120
        while _sacct(tb, job, "JobID,State", "-X").get(job, [""])[0] != "RUNNING":
            assert time.monotonic() < deadline, "job never ran"
            time.sleep(0.5)
        done = tb.run_as_user(["sacct", "-j", job, "--json"])
        first = json.loads(done.stdout)["jobs"]
        assert len(first) == 1
        sluid = first[0]["sluid"]
        assert re.fullmatch(r"s[0-9A-Z]{13}", sluid), sluid
        assert first[0]["original_sluid"] == sluid
        assert _sacct(tb, job, "JobID,SLUID", "-X")[job] == [sluid]  # also a text field
        tb.run(["scontrol", "requeue", job])
        deadline = time.monotonic() + 120
        while (
            len(json.loads(tb.run_as_user(["sacct", "-D", "-j", job, "--json"]).stdout)["jobs"]) < 2
        ):
            assert time.monotonic() < deadline, "no second run recorded"
            time.sleep(0.5)
        runs = json.loads(tb.run_as_user(["sacct", "-D", "-j", job, "--json"]).stdout)["jobs"]
        assert [r["job_id"] for r in runs] == [int(job), int(job)]
        assert runs[0]["sluid"] == sluid
        assert runs[1]["sluid"] != sluid
        assert [r["restart_cnt"] for r in runs] == [0, 1]
        assert "REQUEUED" in runs[0]["state"]["current"]
    finally:
        tb.run(["scancel", job], check=False)
