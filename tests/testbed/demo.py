"""``python -m tests.testbed demo`` (``make demo``): the main job, end to end.

Brings the testbed up (Slurm 22.05 with two nodes, the real Apptainer 1.4.5,
a local registry), then, as the non-root test user on this "login node", runs
the story a scientist runs, through the ``hpcbridge`` command line only:

1. ``hpcbridge convert docker://127.0.0.1:5000/hpcb/debian-python:...``: the
   image becomes a SIF in the user's cache, pinned to its digest;
2. ``hpcbridge doctor job.toml``: preflight of runtime, cache, binds and limits;
3. ``hpcbridge submit job.toml``: an array job over input files, one task per
   input, each reading its input through a read-only bind and writing
   ``/output`` (a per-task bind of ``out/<task>``);
4. ``hpcbridge watch ID``: follows the array until it is done;
5. ``hpcbridge status ID`` and every task's output.

Exit 0 only if every step succeeded and every task wrote its output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

REPO = Path(__file__).resolve().parents[2]
SITE_CONFIG = REPO / "site-configs" / "testbed.toml"

INPUTS = {
    "alpha.csv": "name,count\nalpha,1\nbeta,2\ngamma,3\n",
    "beta.csv": "name,count\nquick,4\nbrown,5\n",
    "gamma.csv": "name,count\nfox,6\n",
    "delta.csv": "name,count\njumps,7\nover,8\nthe,9\ndog,10\n",
}

COUNT_PY = """\
import csv, os, platform, sys

src, dst = sys.argv[1], sys.argv[2]
with open(src, newline="") as fh:
    rows = list(csv.DictReader(fh))
total = sum(int(r["count"]) for r in rows)
with open(dst, "w") as out:
    out.write(f"input {os.path.basename(src)}: {len(rows)} rows, total {total}\\n")
    out.write(f"python {platform.python_version()} on {platform.node()}\\n")
"""


def job_toml(image_ref: str) -> str:
    return f"""\
# A word-count style array: one task per CSV file in data/.
name = "demo-count"
image = "docker://{image_ref}"
command = ["python3", "/code/count.py", "/input/{{input_name}}", "/output/result.txt"]
inputs = "data/*.csv"
binds = [
  "data:/input:ro",
  "code:/code:ro",
  "out/{{task}}:/output",
]

[resources]
time = "00:05:00"
cpus_per_task = 1
"""


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _run(tb: Testbed, work: Path, env: dict[str, str], *args: str, show: bool = True) -> str:
    print("$ hpcbridge " + " ".join(args), flush=True)
    res = tb.hpcbridge(*args, cwd=work, env=env, timeout=900)
    if res.stdout and show:
        print(res.stdout, end="" if res.stdout.endswith("\n") else "\n")
    if res.stderr:
        print(res.stderr, end="" if res.stderr.endswith("\n") else "\n", file=sys.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"hpcbridge {args[0]} exited with status {res.returncode}")
    return res.stdout


def _write(tb: Testbed, path: Path, text: str) -> None:
    tb.run_as_user(["mkdir", "-p", str(path.parent)])
    tb.run_as_user(["sh", "-c", 'cat > "$1"', "write", str(path)], input=text)


def story(tb: Testbed) -> bool:
    image = tb.image("debian-python")
    work = tb.user_dir("demo")
    env = {"HPCBRIDGE_SITE_CONFIG": str(SITE_CONFIG)}
    print(f"demo: working as {tb.user.name} in {work} (site config {SITE_CONFIG.name})")
    for name, text in INPUTS.items():
        _write(tb, work / "data" / name, text)
    _write(tb, work / "code" / "count.py", COUNT_PY)
    _write(tb, work / "job.toml", job_toml(image.ref))
    print((work / "job.toml").read_text(), end="")

    _step("1. convert the image to a SIF pinned to its digest")
    _run(tb, work, env, "convert", f"docker://{image.ref}")
    _step("2. preflight")
    _run(tb, work, env, "doctor", "job.toml")
    _step("3. submit the array (one task per input)")
    sub = json.loads(_run(tb, work, env, "submit", "job.toml", "--json", show=False))
    sub_id = str(sub["id"])
    print(f"submitted {sub_id}: Slurm job(s) {', '.join(sub['job_ids'])}, tasks {sub['tasks']}")
    print(f"image pinned: {sub['image']['sif_path']}")
    _step("4. watch it until it is done")
    _run(tb, work, env, "watch", sub_id)
    _step("5. status and outputs")
    _run(tb, work, env, "status", sub_id)
    ok = True
    for task, name in enumerate(sorted(INPUTS)):
        out = work / "out" / str(task) / "result.txt"
        print(f"----- out/{task}/result.txt  ({name})")
        if out.is_file():
            print(out.read_text(), end="")
        else:
            ok = False
            print("(missing)")
    return ok


def main() -> int:
    from tests.testbed import lifecycle
    from tests.testbed.api import Testbed

    try:
        state = lifecycle.up(quiet=False, strict=True)
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo: testbed up failed: {exc}", file=sys.stderr)
        return 1
    try:
        ok = story(Testbed(state))
    except RuntimeError as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr)
        ok = False
    finally:
        # Like the test fixture: stop what this run started, unless asked to keep it.
        if state.get("started") and not os.environ.get("HPCBRIDGE_TESTBED_KEEP"):
            print("demo: stopping the testbed it started (HPCBRIDGE_TESTBED_KEEP=1 keeps it up)")
            lifecycle.down(quiet=True)
    print("\ndemo: OK, every task wrote its output" if ok else "\ndemo: FAILED", flush=True)
    return 0 if ok else 1
