"""What runs: ``status`` of one testbed, ``leftovers`` of every testbed this machine knows.

Both releases' default state dirs (or $HPCBRIDGE_TESTBED_DIR alone) are "known", so
``leftovers`` (run by ``make test`` after pytest) finds a surviving 22.05 or 26.05
daemon, a stray slurmstepd of either, the 26.05 daemons started through the sandbox
(their command line names the state dir) and bwrap-wrapped processes whose
environment names it.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from hpcbridge import runner
from tests.testbed import config as C
from tests.testbed import slurm, users
from tests.testbed.procs import PidRegistry, ProcInfo, testbed_processes


def read_state(layout: Optional[C.Layout] = None) -> Optional[dict[str, Any]]:
    layout = layout or C.Layout(C.state_dir())
    try:
        data: dict[str, Any] = json.loads(layout.json.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def recorded_release(state: Optional[Mapping[str, Any]]) -> str:
    """The Slurm release a testbed.json describes (22.05 for one written before the knob)."""
    knobs = (state or {}).get("knobs") or {}
    return str(knobs.get("slurm") or C.DEFAULT_RELEASE)


def testuser_uid() -> Optional[int]:
    try:
        return pwd.getpwnam(users.USER_NAME).pw_uid
    except KeyError:
        return None


def known_roots(environ: Mapping[str, str]) -> list[Path]:
    """The default state dirs of both releases; only $HPCBRIDGE_TESTBED_DIR when that is set
    (a secondary testbed, e.g. the lifecycle test's, looks at nothing but itself)."""
    if environ.get("HPCBRIDGE_TESTBED_DIR"):
        return [C.state_dir(environ)]
    return [C.state_dir(environ, r) for r in C.RELEASES]


def owns_test_user(root: Path, environ: Mapping[str, str]) -> bool:
    """Whether the testbed in ``root`` may treat every test-user process as its own.

    squashfuse_ll runs with a scrubbed environment, so only its uid ties it to a
    testbed.  The test user is shared by all testbeds: the main 22.05 one owns it; the
    main 26.05 one only while the 22.05 one is down; a secondary testbed
    (HPCBRIDGE_TESTBED_PORT_OFFSET set: the benchmark's, the lifecycle test's) never.
    """
    if C.PORT_OFFSET != 0:
        return False
    release = recorded_release(read_state(C.Layout(root)))
    if release == "22.05":
        return True
    main = C.state_dir(environ, "22.05")
    return main != root and PidRegistry(main).alive("slurmctld") is None


def hand_over_registry(
    layout: C.Layout, pids: PidRegistry, environ: Mapping[str, str]
) -> Optional[Path]:
    """If this testbed started the shared registry and another known one still runs,
    move the registry's PID record there (it stops it when it goes down)."""
    pid = pids.alive("registry")
    if pid is None:
        return None
    for other in known_roots(environ):
        theirs = PidRegistry(other)
        if other != layout.root and theirs.alive("slurmctld") is not None:
            if theirs.alive("registry") is None:
                rec = pids.get("registry") or {}
                argv = rec.get("argv")
                theirs.record("registry", pid, argv if isinstance(argv, list) else [])
            pids.forget("registry")
            return other
    return None


def leftovers(
    environ: Optional[Mapping[str, str]] = None, roots: Optional[list[Path]] = None
) -> list[str]:
    """Descriptions of testbed daemons still running (empty when clean), of the testbeds in
    ``roots`` (default: every known one)."""
    env = os.environ if environ is None else environ
    found: dict[int, ProcInfo] = {}
    for root in roots if roots is not None else known_roots(env):
        uid = testuser_uid() if owns_test_user(root, env) else None
        for p in testbed_processes(root, uid):
            found[p.pid] = p
    return [
        f"{p.pid} {p.comm} ({p.state}) uid={p.uid}: {' '.join(p.cmdline)[:200]}"
        for p in sorted(found.values(), key=lambda p: p.pid)
    ]


def status(
    environ: Optional[Mapping[str, str]] = None, state_dir: Optional[Path] = None
) -> tuple[bool, str]:
    """(healthy?, a human-readable report)."""
    env = os.environ if environ is None else environ
    layout = C.Layout(Path(state_dir or C.state_dir(env)))
    pids = PidRegistry(layout.root)
    state = read_state(layout) or {}
    lines = [f"state dir: {layout.root}"]
    healthy = True
    names = pids.names()
    if not names:
        return False, "\n".join([*lines, "testbed is down (no daemons recorded)"])
    for name in names:
        pid = pids.alive(name)
        rec = pids.get(name) or {}
        lines.append(f"  {name:<14} pid {rec.get('pid')}: {'running' if pid else 'NOT RUNNING'}")
        healthy &= pid is not None
    knobs = C.Knobs.from_dict(state.get("knobs", {}))
    nodes = slurm.node_states(layout)
    lines.append(f"nodes: {' '.join(f'{n}={s}' for n, s in sorted(nodes.items())) or 'no answer'}")
    healthy &= slurm.nodes_ready(layout, knobs)
    lines += _slurm_lines(state.get("slurm") or {}, knobs)
    reg = state.get("registry")
    if reg:
        from tests.testbed import registry

        ok = registry.registry_ready(reg)
        lines.append(f"registry {reg}: {'answers' if ok else 'NO ANSWER'}")
        healthy &= ok
    lines.append(f"images: {', '.join(sorted(state.get('images', {}))) or 'none'}")
    lines.append(f"knobs: {json.dumps(knobs.to_dict(), sort_keys=True)}")
    lines.append(f"source {layout.env_sh}  # to use it by hand")
    return healthy, "\n".join(lines)


def _slurm_lines(facts: Mapping[str, Any], knobs: C.Knobs) -> list[str]:
    version = facts.get("version") or knobs.slurm
    lines = [f"slurm: {version} ({facts.get('packages', 'host (Debian 12)')})"]
    how = facts.get("memory_enforcement") or "?"
    lines.append(f"memory limits: {'on' if knobs.mem_limit else 'off (mem_limit)'}; {how}")
    if facts.get("cgroups"):
        lines.append(f"cgroups: {facts['cgroups']}")
    rl = facts.get("rate_limit")
    if rl:
        lines.append(
            f"rate limit: rl_enable, bucket {rl['bucket_size']}, +{rl['refill_rate']} "
            f"every {rl['refill_period']} s per user (throttled RPCs: {rl['log']})"
        )
    elif knobs.slurm != "22.05":
        lines.append("rate limit: off")
    return lines


def sinfo_text(layout: C.Layout) -> str:
    done = runner.run(["sinfo"], env=slurm.client_env(layout), check=False, timeout=10)
    return done.stdout + done.stderr
