"""``python -m tests.testbed demo``: the issue-2 stage of ``make demo``.

Brings the testbed up, then as the non-root test user: converts the ``busybox``
test image from the local registry to a SIF (``hpcbridge convert``; before that
command existed, the real Apptainer's ``apptainer build --no-https``), submits a
3-task sbatch array whose tasks each run ``apptainer exec --bind in:/input:ro
--bind out/<task>:/output`` reading /input and writing /output, waits, and prints
every output.  Exit 0 only if every task wrote its output.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

TASKS = 3

# Runs inside the container: $1 is the task index.
TASK_BODY = r"""
t="$1"
{
  echo "task $t ran on $(hostname) as $(id -un) in $(. /etc/os-release 2>/dev/null; echo "${NAME:-busybox}")"
  echo "input: $(cat /input/input-$t.txt)"
  echo "upper: $(tr a-z A-Z < /input/input-$t.txt)"
  echo "words: $(wc -w < /input/input-$t.txt)"
} > /output/result.txt
"""

WORDS = ["alpha beta gamma", "the quick brown fox", "one two"]


def job_script(sif: Path, workdir: Path) -> str:
    q = shlex.quote
    return f"""#!/bin/sh
#SBATCH --job-name=hpcb-demo
#SBATCH --array=0-{TASKS - 1}
#SBATCH --output={q(str(workdir))}/logs/%x_%A_%a.out
#SBATCH --ntasks=1
set -eu
t="$SLURM_ARRAY_TASK_ID"
cd {q(str(workdir))}
mkdir -p "out/$t"
exec apptainer exec --bind "$PWD/in:/input:ro" --bind "$PWD/out/$t:/output" \\
  {q(str(sif))} sh -c {q(TASK_BODY)} task "$t"
"""


def _sif(tb: Testbed, ref: str, work: Path) -> Path:
    """The busybox SIF: ``hpcbridge convert`` (the product) when the CLI has it, else
    the real Apptainer's ``apptainer build --no-https`` from the local registry."""
    if tb.hpcbridge("convert", "--help", cwd=work).returncode == 0:
        print(f"demo: hpcbridge convert docker://{ref}")
        done = tb.hpcbridge("convert", f"docker://{ref}", "--json", cwd=work, check=True)
        result = json.loads(done.stdout)
        print(f"demo: {result['path']} (digest {result['digest']}, cached: {result['cached']})")
        return Path(result["path"])
    sif = work / "busybox.sif"
    print(f"demo: apptainer build --no-https {sif.name} docker://{ref}")
    tb.run_as_user(
        ["apptainer", "-q", "build", "--no-https", str(sif), f"docker://{ref}"],
        cwd=work,
        timeout=600,
    )
    return sif


def main() -> int:
    from tests.testbed import lifecycle
    from tests.testbed.api import Testbed

    try:
        state = lifecycle.up(quiet=False, strict=True)
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo: testbed up failed: {exc}", file=sys.stderr)
        return 1
    tb = Testbed(state)
    image = tb.image("busybox")
    work = tb.user_dir("demo")
    print(f"demo: working as {tb.user.name} in {work}")
    tb.run_as_user(["mkdir", "-p", "in", "out", "logs"], cwd=work)
    for i, words in enumerate(WORDS):
        tb.run_as_user(["sh", "-c", f"cat > in/input-{i}.txt"], cwd=work, input=words + "\n")
    sif = _sif(tb, image.ref, work)
    script = work / "demo.sh"
    tb.run_as_user(["sh", "-c", "cat > demo.sh"], cwd=work, input=job_script(sif, work))
    job = tb.sbatch(str(script), cwd=work)
    print(f"demo: submitted array job {job} ({TASKS} tasks); waiting")
    states = tb.wait_for_jobs([job], timeout=300)
    print(f"demo: job states {states}")
    ok = True
    for t in range(TASKS):
        out = work / "out" / str(t) / "result.txt"
        print(f"----- out/{t}/result.txt")
        if out.is_file():
            print(out.read_text(), end="")
        else:
            ok = False
            print("(missing)")
            for log in sorted((work / "logs").glob(f"*_{t}.out")):
                print(log.read_text(), end="")
    print("demo: OK, every task wrote its output" if ok else "demo: FAILED", flush=True)
    return 0 if ok else 1
