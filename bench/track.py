"""bench/track: the costs of submit and track (docs/benchmarks.md, section "track").

1. one status of a synthetic 10,000-task array, the steps a poll cycle runs
   (hpcbridge/tracking/tracker.py): parse the captured squeue text, read the
   outcome files, merge into task states and count them; and the same with the
   sacct figures of every ended task merged in (the text ``sacct -P`` gives for
   the production fields, steps included, parsed as the poller's hand-off is)
   (target < 1 s each);
2. ``hpcbridge --help`` wall time (target < 0.15 s);
3. submit overhead beyond the sbatch call itself (target < 0.5 s): wall time
   of ``hpcbridge submit`` minus the time its sbatch took (measured by a timing
   wrapper first on PATH), image and cluster limits already cached;
4. per-task overhead of the generated script over a bare ``apptainer exec``
   (target < 50 ms): the rendered script run with bash for one task vs the
   same container command alone.

Parts 3 and 4 need the testbed (run as root with it up); they are left out,
and say so, otherwise.  Every figure is the median of ``--runs`` runs.  Results
go to ``--json`` (default bench/results/track.json) and, with ``--docs``, into
the "track" block of docs/benchmarks.md:

    .venv/bin/python bench/track.py [--runs 15] [--json PATH] [--docs] [--no-testbed]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.docblock import replace_block  # noqa: E402
from hpcbridge import runner  # noqa: E402
from hpcbridge.scheduler import sacct, slurm  # noqa: E402
from hpcbridge.tracking.outcomes import read_outcomes  # noqa: E402
from hpcbridge.tracking.record import record_from_dict  # noqa: E402
from hpcbridge.tracking.summary import progress, task_statuses  # noqa: E402

# The synthetic array: chunks of MaxArraySize tasks, the last RUNNING tasks still
# running (no outcome files yet), one task in FAIL_EVERY failed with exit code 3.
N_TASKS = 10_000
CHUNK = 1001
RUNNING = 100
FAIL_EVERY = 997
SUBMIT_ARRAY = "0-9"  # the job submitted in part 3
TARGETS = {
    "status_squeue_s": 1.0,
    "status_figures_s": 1.0,
    "help_s": 0.15,
    "submit_overhead_beyond_sbatch_s": 0.5,
    "per_task_overhead_s": 0.05,
}


def median_of(runs: int, fn: Callable[[], Any]) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def synthetic(tmp: Path) -> tuple[dict[str, Any], str, str, Path]:
    """A record (as record.json holds it), squeue text, sacct text (production fields,
    header and steps) and the outcome files."""
    chunks = []
    for k, offset in enumerate(range(0, N_TASKS, CHUNK)):
        last = min(CHUNK, N_TASKS - offset) - 1
        chunks.append({"offset": offset, "indices": f"0-{last}", "job_id": str(500 + k)})
    record = {
        "id": "20260101-000000-abcdef",
        "name": "bench",
        "is_array": True,
        "time_limit": 600,
        "state": "submitted",
        "chunks": chunks,
    }
    sq = []
    sa = ["|".join(sacct.ACCOUNTING_FIELDS)]
    finished = N_TASKS - RUNNING
    for task in range(N_TASKS):
        k, local = divmod(task, CHUNK)
        job = 500 + k
        state = "FAILED" if task % FAIL_EVERY == 0 else "COMPLETED"
        if task >= finished:
            state = "RUNNING"
        sq.append(f"{job}_{local}|{10000 + task}|{job}|{local}|{state}|None|hpcb:x.{k}")
        code = "3:0" if state == "FAILED" else "0:0"
        if state != "RUNNING":  # sacct's figures: ended tasks only (the allocation + 2 steps)
            node = f"n{task % 2 + 1}"
            times = "2026-01-01T00:00:00|2026-01-01T00:00:09"
            sa.append(
                f"{job}_{local}|{10000 + task}|{state}|{code}|None|00:00:09|00:08.500|"
                f"|2000M|1|{node}|{times}|big"
            )
            for step, rss in (("batch", "812340K"), ("extern", "1024K")):
                sa.append(
                    f"{job}_{local}.{step}|{10000 + task}.{step}|{state}|{code}||00:00:09|"
                    f"00:08.400|{rss}||1|{node}|{times}|{step}"
                )
    outcomes = tmp / "outcomes"
    outcomes.mkdir()
    for task in range(finished):
        k, _ = divmod(task, CHUNK)
        (outcomes / f"{task}.start").write_text(f"1700000000 {10000 + task} {500 + k} n1\n")
        exit_code = 3 if task % FAIL_EVERY == 0 else 0
        (outcomes / f"{task}.end").write_text(f"1700000009 {exit_code} exit\n")
    return record, "\n".join(sq) + "\n", "\n".join(sa) + "\n", outcomes


def bench_status(runs: int) -> dict[str, tuple[float, list[float]]]:
    """One status of the array as a poll cycle computes it, from either scheduler text."""
    with tempfile.TemporaryDirectory() as d:
        raw, sq, sa, outcomes = synthetic(Path(d))
        record = record_from_dict(raw)

        def status(parsed: Any, figures: Any = None) -> None:
            # the cycle reads the outcome files AFTER the query, whatever answered it
            found = read_outcomes(outcomes)
            counted = progress(task_statuses(record, found, parsed, accounting=figures))
            assert counted.total == N_TASKS, counted

        def by_task(text: str) -> dict[int, Any]:
            got = sacct.parse_accounting(text)
            out = {(int(a.array_job_id) - 500) * CHUNK + (a.task or 0): a for a in got.tasks}
            assert len(out) == N_TASKS - RUNNING, len(out)
            return out

        return {
            "status_squeue_s": median_of(runs, lambda: status(slurm.parse_squeue(sq))),
            "status_figures_s": median_of(
                runs, lambda: status(slurm.parse_squeue(sq), by_task(sa))
            ),
            "parse_squeue_only_s": median_of(runs, lambda: slurm.parse_squeue(sq)),
            "parse_accounting_only_s": median_of(runs, lambda: by_task(sa)),
            "read_outcomes_only_s": median_of(runs, lambda: read_outcomes(outcomes)),
        }


def bench_help(runs: int) -> dict[str, tuple[float, list[float]]]:
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


def bench_testbed(runs: int) -> dict[str, tuple[float, list[float]]]:
    from tests.testbed.api import Testbed

    tb = Testbed.from_state_dir()
    busybox = tb.image("busybox").ref
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
        f'name = "bench"\nimage = "docker://{busybox}"\ncommand = ["true"]\n'
        f'array = "{SUBMIT_ARRAY}"\n[resources]\ntime = "00:01:00"\n',
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
        t0 = time.perf_counter()
        tb.hpcbridge("submit", str(job), cwd=d, env=env, check=True)
        total = time.perf_counter() - t0
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
        "submit_total_s": (statistics.median(totals), totals),
        "submit_overhead_beyond_sbatch_s": (statistics.median(overheads), overheads),
        "bare_apptainer_exec_s": t_bare,
        "generated_script_task_s": t_gen,
        "per_task_overhead_s": (t_gen[0] - t_bare[0], []),
    }


def markdown(r: dict[str, Any]) -> str:
    """The docs block: parameters, method and figures, all from this run's result."""
    m, p = r["median"], r["parameters"]
    load = ", ".join(f"{x:.1f}" for x in r["load_average_before"])
    finished = p["tasks"] - p["running"]

    def ms(key: str) -> str:
        return f"{m[key] * 1000:.1f} ms" if key in m else "not measured"

    def s(key: str) -> str:
        return f"{m[key]:.3f} s" if key in m else "not measured"

    def fastest(key: str) -> str:
        return f"{min(r['samples'][key]):.3f} s" if r["samples"].get(key) else "not measured"

    def result(key: str, text: str) -> str:
        return text if key in m else "not measured"

    def verdict(key: str) -> str:
        if key not in m:
            return ""
        return "met" if m[key] < r["targets"][key] else "**missed**"

    rows = [
        (
            f"status of {p['tasks']:,} tasks from squeue text + {2 * finished:,} outcome files"
            f" + sacct figures of {finished:,} ended tasks (3 lines each)",
            "< 1 s",
            f"{s('status_figures_s')} (sacct parse alone {s('parse_accounting_only_s')})",
            "status_figures_s",
        ),
        (
            f"status of {p['tasks']:,} tasks from squeue text + {2 * finished:,} outcome files",
            "< 1 s",
            f"{s('status_squeue_s')} (squeue parse alone {s('parse_squeue_only_s')}, "
            f"reading the files alone {s('read_outcomes_only_s')})",
            "status_squeue_s",
        ),
        ("`hpcbridge --help`", "< 0.15 s", s("help_s"), "help_s"),
        (
            "submit overhead beyond sbatch",
            "< 0.5 s",
            f"{s('submit_overhead_beyond_sbatch_s')} (fastest run "
            f"{fastest('submit_overhead_beyond_sbatch_s')}; whole `hpcbridge submit` "
            f"{s('submit_total_s')})",
            "submit_overhead_beyond_sbatch_s",
        ),
        (
            "per-task overhead of the generated script",
            "< 50 ms",
            f"{ms('per_task_overhead_s')} ({ms('generated_script_task_s')} vs "
            f"{ms('bare_apptainer_exec_s')} for the bare `apptainer exec`)",
            "per_task_overhead_s",
        ),
    ]
    lines = [
        f"Run of {r['when']}, {r['host']['cpus']} CPUs, Python {r['host']['python']}, "
        f"load average before the run {load}; every figure is the median of {p['runs']} runs "
        f"(`--runs {p['runs']}`; samples in `{r['json']}`).",
        "",
        f"1. **Status of a {p['tasks']:,}-task array**: chunks of {p['chunk']:,} tasks "
        f"(MaxArraySize), the last {p['running']} still running, 1 task in {p['fail_every']} "
        f"failed; the captured squeue text (`%i|%A|%F|%K|%T|%r|%k`), the sacct text of the "
        f"ended tasks' figures (`sacct -P` with the production fields and header, the "
        f"allocation and two steps per task) and the {2 * finished:,} outcome files "
        f"(`<T>.start`/`<T>.end`) of the {finished:,} finished tasks in a temporary directory. "
        "Timed in-process, the steps of a poll cycle (`hpcbridge/tracking/tracker.py`) after "
        "the queries: parse the texts, `read_outcomes`, `task_statuses` (with the figures by "
        "task, or without), `progress`.",
        "2. **`hpcbridge --help`**: wall time of `.venv/bin/hpcbridge --help` (a new process "
        "each time; the page cache is warm).",
        f"3. **Submit overhead beyond the sbatch call**: wall time of `hpcbridge submit` of a "
        f'busybox job with `array = "{p["submit_array"]}"` (image already in the SIF cache, '
        "cluster limits cached) minus the time the real `sbatch` took, measured by a timing "
        "wrapper placed first on PATH.",
        "4. **Per-task overhead of the generated script**: the rendered script of that job run "
        "with `bash` for one task (it records `<T>.start`/`<T>.end`, traps signals, forwards "
        "per-task variables, runs the container in the background and waits) against "
        "`apptainer exec --cleanenv --no-eval SIF true` alone, both as the test user through "
        "the testbed's Apptainer.",
    ]
    if r.get("testbed_skipped"):
        lines += ["", f"Parts 3 and 4 were not measured: {r['testbed_skipped']}."]
    lines += ["", "| measure | target | result | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {result(k, c)} | {verdict(k)} |" for a, b, c, k in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "track.json")
    ap.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--no-testbed", action="store_true")
    args = ap.parse_args()
    load_before = list(os.getloadavg())
    timings: dict[str, tuple[float, list[float]]] = {}
    timings.update(bench_status(args.runs))
    timings.update(bench_help(args.runs))
    skipped = "--no-testbed" if args.no_testbed else ""
    if not args.no_testbed:
        try:
            timings.update(bench_testbed(args.runs))
        except Exception as exc:  # no testbed: say so, do not fake numbers
            skipped = f"no testbed ({str(exc).splitlines()[0][:200]})"
            print(f"testbed parts skipped: {exc}", file=sys.stderr)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "parameters": {
            "runs": args.runs,
            "tasks": N_TASKS,
            "chunk": CHUNK,
            "running": RUNNING,
            "fail_every": FAIL_EVERY,
            "submit_array": SUBMIT_ARRAY,
        },
        "median": {k: v[0] for k, v in timings.items()},
        "samples": {k: v[1] for k, v in timings.items() if v[1]},
        "targets": TARGETS,
        "testbed_skipped": skipped,
        "json": os.path.relpath(args.json, REPO),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    print(md)
    if args.docs:
        if skipped:  # keep the last complete figures rather than replace them by none
            print(f"docs/benchmarks.md not updated: parts 3 and 4 missing ({skipped})")
            return 1
        replace_block(REPO / "docs" / "benchmarks.md", "track", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
