"""bench/track: the costs of submit and track (reported in docs/benchmarks.md, section "track").

1. parse + summarise a synthetic 10,000-task array from captured scheduler
   output (squeue and sacct text) and 10,000 pairs of outcome files (target < 1 s);
2. ``hpcbridge --help`` wall time (target < 0.15 s);
3. submit overhead beyond the sbatch call itself (target < 0.5 s): wall time
   of ``hpcbridge submit`` minus the time its sbatch took (measured by a timing
   wrapper first on PATH), image and cluster limits already cached;
4. per-task overhead of the generated script over a bare ``apptainer exec``
   (target < 50 ms): the rendered script run with bash for one task vs the
   same container command alone.

Parts 3 and 4 need the testbed (run as root with it up); they are skipped
otherwise.  Every figure is the median of N runs.  Usage:
``python bench/track.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hpcbridge import runner  # noqa: E402
from hpcbridge.scheduler import slurm  # noqa: E402
from hpcbridge.tracking.outcomes import read_outcomes  # noqa: E402
from hpcbridge.tracking.summary import summarise, task_statuses  # noqa: E402

N_TASKS = 10_000


def median_of(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic(tmp: Path) -> tuple[dict[str, Any], str, str, Path]:
    record = {
        "id": "20260101-000000-abcdef",
        "is_array": True,
        "time_limit": 600,
        "chunks": [
            {"offset": 0, "indices": "0-1000", "job_id": "500"},
            {"offset": 1001, "indices": "0-1000", "job_id": "501"},
        ]
        + [{"offset": 1001 * k, "indices": "0-1000", "job_id": str(500 + k)} for k in range(2, 9)]
        + [{"offset": 9009, "indices": "0-990", "job_id": "509"}],
    }
    sq, sa = [], []
    for task in range(N_TASKS):
        k, local = divmod(task, 1001)
        job = 500 + k
        state = "FAILED" if task % 997 == 0 else "COMPLETED"
        if task >= 9900:
            state = "RUNNING"
        sq.append(f"{job}_{local}|{10000 + task}|{job}|{local}|{state}|None|hpcb:x.{k}")
        code = "3:0" if state == "FAILED" else "0:0"
        sa.append(f"{job}_{local}|{10000 + task}|{state}|{code}|None|big")
    outcomes = tmp / "outcomes"
    outcomes.mkdir()
    for task in range(9900):
        k, _ = divmod(task, 1001)
        (outcomes / f"{task}.start").write_text(f"1700000000 {10000 + task} {500 + k} n1\n")
        code = 3 if task % 997 == 0 else 0
        (outcomes / f"{task}.end").write_text(f"1700000009 {code} exit\n")
    return record, "\n".join(sq) + "\n", "\n".join(sa) + "\n", outcomes


def bench_summary(runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        record, sq, sa, outcomes = synthetic(Path(d))

        def from_squeue() -> None:
            res = slurm.parse_squeue(sq)
            out = read_outcomes(outcomes)
            s = summarise(record, task_statuses(record, out, res))
            assert s["total"] == N_TASKS

        def from_sacct() -> None:
            res = slurm.parse_sacct(sa)
            s = summarise(record, task_statuses(record, {}, res))
            assert s["total"] == N_TASKS

        def parse_only() -> None:
            slurm.parse_squeue(sq)

        return {
            "squeue_text_plus_10k_outcome_files_s": median_of(runs, from_squeue),
            "sacct_text_s": median_of(runs, from_sacct),
            "parse_squeue_only_s": median_of(runs, parse_only),
        }


def bench_help(runs: int) -> dict[str, float]:
    exe = REPO / ".venv" / "bin" / "hpcbridge"
    runner.run([str(exe), "--help"])  # warm the page cache
    return {"help_s": median_of(runs, lambda: runner.run([str(exe), "--help"]))}


TIMER = """#!/bin/sh
s=$(date +%s.%N)
/usr/bin/sbatch "$@"; rc=$?
e=$(date +%s.%N)
echo "$s $e" >> {log}
exit $rc
"""


def bench_testbed(runs: int) -> dict[str, float]:
    try:
        from tests.testbed.api import Testbed

        tb = Testbed.from_state_dir()
        busybox = tb.image("busybox").ref
    except Exception as exc:  # no testbed: say so, do not fake numbers
        print(f"testbed parts skipped: {exc}", file=sys.stderr)
        return {}
    d = tb.user_dir("bench-track")
    uid, gid = tb.user.uid, tb.user.gid

    def write(name: str, text: str, mode: int = 0o644) -> Path:
        p = d / name
        p.parent.mkdir(exist_ok=True)
        os.chown(p.parent, uid, gid)
        p.write_text(text)
        os.chmod(p, mode)
        os.chown(p, uid, gid)
        return p

    log = write("sbatch.log", "")
    write("bin/sbatch", TIMER.format(log=log), 0o755)
    write("site.toml", "[polling]\nmin_interval = 1.0\n")
    job = write(
        "job.toml",
        f'name = "bench"\nimage = "docker://{busybox}"\ncommand = ["true"]\narray = "0-9"\n'
        '[resources]\ntime = "00:01:00"\n',
    )
    env = {
        "HPCBRIDGE_SITE_CONFIG": str(d / "site.toml"),
        "HPCBRIDGE_STATE_DIR": str(d / "state"),
        "HPCBRIDGE_CACHE_DIR": str(tb.user.home / ".cache" / "hpcbridge-track-tests"),
        "HPCBRIDGE_CONVERT_INSECURE_REGISTRIES": "127.0.0.1:5000",
        "PATH": f"{d / 'bin'}:{tb.env['PATH']}",
    }
    tb.hpcbridge("submit", str(job), cwd=d, env=env, check=True)  # convert + limits cached
    overheads, totals = [], []
    for _ in range(runs):
        t0 = time.time()
        tb.hpcbridge("submit", str(job), cwd=d, env=env, check=True)
        total = time.time() - t0
        start, end = (float(x) for x in log.read_text().splitlines()[-1].split())
        totals.append(total)
        overheads.append(total - (end - start))
    # per-task overhead: the generated script for one task vs the bare container call
    subs = sorted((d / "state" / "submissions").iterdir())
    script = subs[-1] / "job-0.sh"
    sif = json.loads((subs[-1] / "record.json").read_text())["image"]["sif_path"]
    task_env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "1", "SLURM_ARRAY_JOB_ID": "1"}
    apptainer = str(tb.apptainer)
    tb.run_as_user([apptainer, "exec", "--cleanenv", sif, "true"], cwd=d)

    def bare() -> None:
        tb.run_as_user([apptainer, "exec", "--cleanenv", "--no-eval", sif, "true"], cwd=d)

    def generated() -> None:
        tb.run_as_user(["bash", str(script)], cwd=d, env=task_env)

    t_bare = median_of(runs, bare)
    t_gen = median_of(runs, generated)
    return {
        "submit_total_s": statistics.median(totals),
        "submit_overhead_beyond_sbatch_s": statistics.median(overheads),
        "bare_apptainer_exec_s": t_bare,
        "generated_script_task_s": t_gen,
        "per_task_overhead_s": t_gen - t_bare,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-testbed", action="store_true")
    args = ap.parse_args()
    results: dict[str, float] = {}
    results.update(bench_summary(args.runs))
    results.update(bench_help(args.runs))
    if not args.no_testbed:
        results.update(bench_testbed(args.runs))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:40} {v * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
