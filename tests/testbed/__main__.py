"""``python -m tests.testbed up|down|status|env|demo|leftovers``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

from tests.testbed import config as C


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring the testbed up (idempotent)")
    for name in C.KNOB_NAMES:
        flag = "--" + name.replace("_", "-")
        default = getattr(C.Knobs(), name)
        env = f"HPCBRIDGE_TESTBED_{name.upper()}"
        if isinstance(default, bool):
            up.add_argument(
                flag,
                dest=name,
                default=None,
                type=C.parse_bool,
                metavar="on|off",
                help=f"default {'on' if default else 'off'}; env {env}",
            )
        else:
            up.add_argument(
                flag, dest=name, default=None, type=int, help=f"default {default}; env {env}"
            )
    up.add_argument("-q", "--quiet", action="store_true")
    sub.add_parser("down", help="stop every daemon the testbed started (by PID)")
    sub.add_parser("status", help="daemons, nodes, registry, knobs; exit 1 if not healthy")
    sub.add_parser("env", help="print shell lines to use the testbed (eval or source them)")
    sub.add_parser("demo", help="up, then a 3-task array job running apptainer exec")
    sub.add_parser("leftovers", help="exit 1 listing testbed daemons still running")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from tests.testbed import lifecycle

    if args.cmd == "up":
        overrides: dict[str, Any] = {
            n: getattr(args, n) for n in C.KNOB_NAMES if getattr(args, n) is not None
        }
        try:
            lifecycle.up(overrides, quiet=args.quiet, strict=True)
        except (RuntimeError, TimeoutError, ValueError, TypeError) as exc:
            print(f"testbed up failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "down":
        lifecycle.down()
        rest = lifecycle.leftovers()
        for line in rest:
            print(f"testbed: still running: {line}", file=sys.stderr)
        return 1 if rest else 0
    if args.cmd == "status":
        ok, text = lifecycle.status()
        print(text)
        return 0 if ok else 1
    if args.cmd == "env":
        layout = C.Layout(C.state_dir())
        if not layout.env_sh.exists():
            print("testbed: not up yet (python -m tests.testbed up)", file=sys.stderr)
            return 1
        sys.stdout.write(layout.env_sh.read_text())
        return 0
    if args.cmd == "demo":
        from tests.testbed.demo import main as demo_main

        rc: int = demo_main()
        return rc
    if args.cmd == "leftovers":
        rest = lifecycle.leftovers()
        for line in rest:
            print(f"testbed leftover: {line}", file=sys.stderr)
        return 1 if rest else 0
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
