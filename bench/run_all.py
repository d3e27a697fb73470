"""Run every benchmark script in bench/ in turn (``make bench``).

Each script prints its own table; the figures go into docs/benchmarks.md (and
docs/testbed.md for the testbed start-up time).  Scripts that need the testbed
bring it up themselves or say so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["testbed_up.py", "convert.py", "track.py"]


def main() -> int:
    worst = 0
    for name in SCRIPTS:
        print(f"== bench/{name}", flush=True)
        code = subprocess.call([sys.executable, str(BENCH / name)], cwd=BENCH.parent)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
