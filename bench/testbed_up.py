"""How long ``python -m tests.testbed up`` takes when everything is cached.

Method (reported in docs/testbed.md):

* warm: the main testbed is already up; time ``up`` N times (wall clock of the whole
  command, Python start-up included) and report min/median/max.
* cached: a second, throw-away testbed in its own state dir with its own ports
  (``HPCBRIDGE_TESTBED_DIR=<tmp>``, ``HPCBRIDGE_TESTBED_PORT_OFFSET=100``) sharing the
  cache (Apptainer rootfs, images): time the first ``up`` (fresh state: new munge key,
  configs, every daemon started), then ``down`` and ``up`` again (state kept, daemons
  down), then ``down`` and remove the state dir.  The registry on 127.0.0.1:5000 is
  shared with the main testbed, so registry start-up (~0.1 s) is not in these numbers.

Run: ``.venv/bin/python bench/testbed_up.py [--runs 5] [--no-cached]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpcbridge import runner  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.monotonic()
    done = runner.run(argv, env=env, cwd=REPO, check=False, timeout=1800)
    elapsed = time.monotonic() - t
    if not done.ok:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-cached", action="store_true", help="skip the second-testbed measurement")
    args = ap.parse_args()
    py = str(REPO / ".venv" / "bin" / "python")
    up = [py, "-m", "tests.testbed", "up", "-q"]
    down = [py, "-m", "tests.testbed", "down"]
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPCBRIDGE_TESTBED_", "SLURM_"))
    }
    results: dict[str, object] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}

    timed(up, base)  # make sure the main testbed is up
    warm = [timed(up, base) for _ in range(args.runs)]
    results["warm_s"] = {
        "runs": args.runs,
        "min": round(min(warm), 3),
        "median": round(statistics.median(warm), 3),
        "max": round(max(warm), 3),
    }

    if not args.no_cached:
        state = Path(tempfile.mkdtemp(prefix="hpcbridge-testbed-bench-", dir="/var/tmp"))
        env = dict(base, HPCBRIDGE_TESTBED_DIR=str(state), HPCBRIDGE_TESTBED_PORT_OFFSET="100")
        try:
            first = timed(up, env)
            timed(down, env)
            again = timed(up, env)
        finally:
            runner.run(down, env=env, cwd=REPO, check=False, timeout=300)
            shutil.rmtree(state, ignore_errors=True)
        results["cached_fresh_state_s"] = round(first, 3)
        results["cached_after_down_s"] = round(again, 3)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
