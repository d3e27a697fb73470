"""Run every benchmark script in bench/ in turn (``make bench``).

Each script prints its own table; convert.py, track.py, report.py and render.py also write their JSON
(bench/results/) and refresh their own block of docs/benchmarks.md (``--docs``);
testbed_up.py's figures go into docs/testbed.md by hand.  Scripts that need the
testbed bring it up themselves or say so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS: list[tuple[str, tuple[str, ...]]] = [
    ("testbed_up.py", ()),
    ("convert.py", ("--docs",)),
    ("track.py", ("--docs",)),
    ("report.py", ("--docs",)),
    ("render.py", ("--docs",)),
]


def main() -> int:
    worst = 0
    for name, args in SCRIPTS:
        print(f"== bench/{name} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(BENCH / name), *args], cwd=BENCH.parent)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
