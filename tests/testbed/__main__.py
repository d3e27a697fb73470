"""``python -m tests.testbed up|down|status|env|demo|leftovers``.

``--slurm 22.05|26.05`` (or $HPCBRIDGE_TESTBED_SLURM) picks the cluster: each release
has its own state dir, so ``up --slurm 26.05`` runs next to the 22.05 one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Optional

from tests.testbed import config as C


def _add_knobs(up: argparse.ArgumentParser) -> None:
    for name in C.KNOB_NAMES:
        flag = "--" + name.replace("_", "-")
        default = getattr(C.Knobs(), name)
        env = f"HPCBRIDGE_TESTBED_{name.upper()}"
        if name == "slurm":
            continue  # a common option of every command
        if isinstance(default, bool):
            sid_default = getattr(C.default_knobs("26.05"), name)
            note = f" (26.05: {'on' if sid_default else 'off'})" if sid_default != default else ""
            up.add_argument(
                flag,
                dest=name,
                default=None,
                type=C.parse_bool,
                metavar="on|off",
                help=f"default {'on' if default else 'off'}{note}; env {env}",
            )
        else:
            up.add_argument(
                flag, dest=name, default=None, type=int, help=f"default {default}; env {env}"
            )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    helps = {
        "up": "bring the testbed up (idempotent)",
        "down": "stop every daemon the testbed started (by PID)",
        "status": "daemons, nodes, registry, knobs; exit 1 if not healthy",
        "env": "print shell lines to use the testbed (eval or source them)",
    }
    for cmd, text in helps.items():
        one = sub.add_parser(cmd, help=text)
        one.add_argument(
            "--slurm",
            choices=C.RELEASES,
            default=None,
            help="Slurm release (default $HPCBRIDGE_TESTBED_SLURM, else 22.05)",
        )
        if cmd == "up":
            _add_knobs(one)
            one.add_argument("-q", "--quiet", action="store_true")
    sub.add_parser("demo", help="up, then a 3-task array job running apptainer exec")
    sub.add_parser("leftovers", help="exit 1 listing daemons of any testbed still running")
    return p


def _state_dir(args: argparse.Namespace) -> Path:
    return C.state_dir(os.environ, args.slurm or C.release_from({}, os.environ))


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from tests.testbed import lifecycle

    if args.cmd == "up":
        overrides: dict[str, Any] = {
            n: getattr(args, n) for n in C.KNOB_NAMES if getattr(args, n, None) is not None
        }
        try:
            lifecycle.up(overrides, quiet=args.quiet, strict=True)
        except (RuntimeError, TimeoutError, ValueError, TypeError) as exc:
            print(f"testbed up failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "down":
        lifecycle.down(state_dir=_state_dir(args))
        rest = lifecycle.leftovers(roots=[_state_dir(args)])
        for line in rest:
            print(f"testbed: still running: {line}", file=sys.stderr)
        return 1 if rest else 0
    if args.cmd == "status":
        ok, text = lifecycle.status(state_dir=_state_dir(args))
        print(text)
        return 0 if ok else 1
    if args.cmd == "env":
        layout = C.Layout(_state_dir(args))
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
