"""bench/report: the cost of ``hpcbridge report`` for a 10,000-task submission
(docs/benchmarks.md, section "report").

A synthetic submission in a temporary state directory: one record of 10,000
tasks in chunks of 1,001 (MaxArraySize), every task finished and remembered in
``status.json`` (so no scheduler query is needed), 20,000 outcome files whose
end lines carry the cgroup figures (``mem_peak=``, ``cpu_usec=``), 1 task in 97
failed, 1 in 499 out of memory.  Measured:

1. wall time of ``hpcbridge report ID`` (text) and ``hpcbridge report ID --html
   FILE`` as new processes (Python start-up, imports, reading the records and the
   outcome files, the figures), with no Slurm client on PATH (accounting: not
   reachable, so every figure comes from the outcome files), target < 2 s;
2. the size of that HTML file (target < 2 MB) and of the ``--json`` output;
3. what the plotting library costs: the wall time of ``import matplotlib.figure``
   in a new process, the installed size of matplotlib and the packages it pulls
   in (their RECORD files), and the time of each figure in-process.

Every time is the median of ``--runs`` runs.  Results go to ``--json`` (default
bench/results/report.json) and, with ``--docs``, into the "report" block of
docs/benchmarks.md:

    .venv/bin/python bench/report.py [--runs 7] [--json PATH] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.docblock import replace_block  # noqa: E402
from hpcbridge.tracking.record import ChunkRecord, JobSource, Record, record_to_dict  # noqa: E402

N_TASKS = 10_000
CHUNK = 1001
FAIL_EVERY = 97
OOM_EVERY = 499
SUB_ID = "20260101-000000-abcdef"
T0 = 1_800_000_000
MIB = 1 << 20
TARGETS = {"report_text_s": 2.0, "report_html_s": 2.0, "html_bytes": 2 * 1024 * 1024}
PLOT_DISTS = ("matplotlib", "numpy", "pillow", "fonttools", "kiwisolver", "contourpy",
              "cycler", "pyparsing", "python-dateutil", "packaging", "six")  # fmt: skip


def median_of(runs: int, fn: Callable[[], Any]) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def synthetic_state(root: Path) -> None:
    """The record, status.json and outcome files of the synthetic submission."""
    sub = root / "submissions" / SUB_ID
    (sub / "outcomes").mkdir(parents=True)
    (sub / "logs").mkdir()
    chunks = []
    for k, offset in enumerate(range(0, N_TASKS, CHUNK)):
        last = min(CHUNK, N_TASKS - offset) - 1
        chunks.append(ChunkRecord(offset=offset, indices=f"0-{last}", job_id=str(500 + k),
                                  mem=4096, time_limit=7200))  # fmt: skip
    job = 'name = "bench"\nimage = "docker://x/y:1"\ncommand = ["true"]\narray = "0-9999"\n'
    rec = Record(id=SUB_ID, name="bench", state="submitted", job=JobSource(text=job), chunks=chunks)
    rec.set_tasks()
    (sub / "record.json").write_text(json.dumps(record_to_dict(rec)))
    known: dict[str, Any] = {}
    for c in chunks:
        for task, local in c.tasks():
            state, code, reason = "COMPLETED", 0, ""
            if task % FAIL_EVERY == 5:
                state, code, reason = "FAILED", 1, "exit code 1"
            elif task % OOM_EVERY == 7:
                state, code, reason = "OUT_OF_MEMORY", 137, "OutOfMemory"
            known[str(task)] = [state, code, None, reason, f"{c.job_id}_{local}"]
            start = T0 + (task // 32) * 40 + task % 7
            elapsed = 30 + (task * 7919) % 600
            peak = (4096 if state == "OUT_OF_MEMORY" else 200 + (task * 104729) % 900) * MIB
            (sub / "outcomes" / f"{task}.start").write_text(
                f"{start} {c.job_id} {c.job_id} n{task % 8}\n"
            )
            (sub / "outcomes" / f"{task}.end").write_text(
                f"{start + elapsed} {code} exit mem_peak={peak} cpu_usec={elapsed * 600000}\n"
            )
    (sub / "status.json").write_text(json.dumps(known))


def hpcbridge(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(HPCBRIDGE_STATE_DIR=str(state), XDG_CONFIG_HOME=str(state / "no-config"),
               PATH="/nonexistent")  # fmt: skip
    env.pop("HPCBRIDGE_SITE_CONFIG", None)
    exe = REPO / ".venv" / "bin" / "hpcbridge"
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hpcbridge {' '.join(args)}: {done.stderr.strip()}")
    return done


def installed_bytes(dists: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for name in dists:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        out[name] = sum(f.size or 0 for f in files)
    return out


def bench(runs: int) -> dict[str, Any]:
    from hpcbridge.report import plots
    from hpcbridge.report.collect import attempts_of  # noqa: F401 (imported: as the CLI does)

    out: dict[str, Any] = {"median": {}, "samples": {}, "size": {}}
    with tempfile.TemporaryDirectory(prefix="hpcb-bench-report-") as tmp:
        state = Path(tmp)
        synthetic_state(state)
        html = state / "report.html"
        hpcbridge(state, "report", SUB_ID)  # the page cache warm, status.json read once
        for key, args in (
            ("report_text_s", ("report", SUB_ID)),
            ("report_html_s", ("report", SUB_ID, "--html", str(html))),
        ):
            out["median"][key], out["samples"][key] = median_of(
                runs, lambda args=args: hpcbridge(state, *args)
            )
        out["size"]["html_bytes"] = html.stat().st_size
        out["size"]["json_bytes"] = len(hpcbridge(state, "report", SUB_ID, "--json").stdout)
        data = json.loads(hpcbridge(state, "report", SUB_ID, "--json").stdout)
    out["median"]["import_matplotlib_s"], out["samples"]["import_matplotlib_s"] = median_of(
        runs,
        lambda: subprocess.run([sys.executable, "-c", "import matplotlib.figure"], check=True),
    )
    out["median"]["python_start_s"], out["samples"]["python_start_s"] = median_of(
        runs, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)
    )
    from hpcbridge.report.attempt import Attempt
    from hpcbridge.report.build import build_report
    from hpcbridge.scheduler.states import JobState

    attempts = [
        Attempt(
            a["task"],
            a["submission"],
            a["attempt"],
            a["job_id"],
            JobState(a["state"]),
            a["reason"],
            a["exit_code"],
            a["node"],
            a["start"],
            a["end"],
            a["elapsed_s"],
            a["cpu_time_s"],
            a["peak_mem_bytes"],
            a["peak_mem_source"],
            a["cpu_time_source"],
            a["req_mem_bytes"],
            a["req_time_s"],
            a["cpus"],
        )
        for a in data["attempts"]
    ]
    rep = build_report(SUB_ID, "bench", [SUB_ID], attempts, accounting="-", generated_at=T0)
    for name, _, draw in plots.FIGURES:
        out["median"][f"figure_{name}_s"], _ = median_of(runs, lambda draw=draw: draw(rep))
    out["installed_bytes"] = installed_bytes(PLOT_DISTS)
    return out


def markdown(r: dict[str, Any]) -> str:
    m, size = r["median"], r["size"]
    inst = r["installed_bytes"]
    total = sum(inst.values()) / 1e6
    figs = ", ".join(f"{k[7:-2]} {v:.3f} s" for k, v in m.items() if k.startswith("figure_"))
    met = {k: ("met" if (m.get(k) or size.get(k) or 0) < t else "**missed**")
           for k, t in r["targets"].items()}  # fmt: skip
    p = r["parameters"]
    return "\n".join(
        [
            f"Run of {r['when']}, {r['host']['cpus']} CPUs, Python {r['host']['python']}, load "
            f"average before the run {', '.join(f'{x:.1f}' for x in r['load_average_before'])}; "
            f"every time is the median of {p['runs']} runs (`--runs {p['runs']}`; samples in "
            f"`{r['json']}`).",
            "",
            f"A synthetic submission of {p['tasks']:,} tasks (chunks of {p['chunk']:,}), all "
            f"finished and remembered in `status.json`, {2 * p['tasks']:,} outcome files with "
            f"cgroup figures, 1 task in {p['fail_every']} failed, 1 in {p['oom_every']} out of "
            "memory; `hpcbridge report` run as a new process with no Slurm client on PATH.",
            "",
            "| measure | target | result | |",
            "|---|---|---|---|",
            f"| `hpcbridge report ID` (text), wall time | < 2 s | {m['report_text_s']:.2f} s | "
            f"{met['report_text_s']} |",
            f"| `hpcbridge report ID --html FILE`, wall time | < 2 s | {m['report_html_s']:.2f} s | "
            f"{met['report_html_s']} |",
            f"| HTML file | < 2 MB | {size['html_bytes'] / 1e6:.2f} MB | {met['html_bytes']} |",
            f"| `--json` output | - | {size['json_bytes'] / 1e6:.2f} MB | |",
            "",
            "What the plotting library (matplotlib, the `report` extra) costs: "
            f"`import matplotlib.figure` {m['import_matplotlib_s']:.2f} s in a new process "
            f"(`python -c pass`: {m['python_start_s']:.2f} s); installed with what it pulls in "
            f"{total:.0f} MB ({', '.join(f'{k} {v / 1e6:.0f}' for k, v in inst.items())}); "
            f"the four figures in-process: {figs}.",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "report.json")
    ap.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()
    load_before = list(os.getloadavg())
    result = bench(args.runs)
    result.update(
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        host={"cpus": os.cpu_count(), "python": platform.python_version()},
        load_average_before=load_before,
        parameters={
            "runs": args.runs,
            "tasks": N_TASKS,
            "chunk": CHUNK,
            "fail_every": FAIL_EVERY,
            "oom_every": OOM_EVERY,
        },
        targets=TARGETS,
        json=os.path.relpath(args.json, REPO),
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    print(md)
    if args.docs:
        replace_block(REPO / "docs" / "benchmarks.md", "report", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
