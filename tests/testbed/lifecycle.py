"""``up`` / ``down`` / ``status`` / ``leftovers`` of the whole testbed.

``up`` holds an exclusive flock on ``<state>/.lock`` so concurrent callers queue
instead of racing; when everything already runs it only checks (well under a second
plus whatever the image side needs to confirm its cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from hpcbridge import runner
from tests.testbed import accounting, slurm, users
from tests.testbed import config as C
from tests.testbed.procs import PidRegistry, stop_pids, testbed_processes

SCHEMA = 1


@contextlib.contextmanager
def flock(path: Path, shared: bool = False) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_state(layout: Optional[C.Layout] = None) -> Optional[dict[str, Any]]:
    layout = layout or C.Layout(C.state_dir())
    try:
        data: dict[str, Any] = json.loads(layout.json.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"testbed: {msg}", flush=True)


def _images_side(
    layout: C.Layout, cache: Path, pids: PidRegistry, user: users.User, quiet: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"bin_dir": None, "registry": None, "images": {}, "missing": []}
    try:
        _images_side_inner(layout, cache, pids, user, quiet, out)
    except Exception as exc:  # the Slurm side stays usable; up() reports the failure
        out["error"] = f"{type(exc).__name__}: {exc}"
        _log(quiet, f"image side FAILED: {out['error']}")
    return out


def _images_side_inner(
    layout: C.Layout,
    cache: Path,
    pids: PidRegistry,
    user: users.User,
    quiet: bool,
    out: dict[str, Any],
) -> None:
    """Apptainer wrapper, registry and test images (tests/testbed/{apptainer,registry,images}.py).

    Each part is skipped (and reported as missing) while its module is not there yet.
    """
    try:
        from tests.testbed import apptainer
    except ImportError:
        out["missing"].append("apptainer")
    else:
        t = time.monotonic()
        extra = [layout.root, users.REPO]
        out["bin_dir"] = str(apptainer.ensure_apptainer(cache, layout.root, user.uid, extra))
        _log(quiet, f"apptainer wrapper in {out['bin_dir']} ({time.monotonic() - t:.1f} s)")
    try:
        from tests.testbed import registry
    except ImportError:
        out["missing"].append("registry")
    else:
        if not registry.registry_ready(C.REGISTRY):
            pids.forget("registry")
            pid = registry.start_registry(layout.root, cache)
            pids.record("registry", pid, ["docker-registry"])
            _log(quiet, f"registry started (pid {pid})")
        out["registry"] = C.REGISTRY
    try:
        from tests.testbed import images
    except ImportError:
        out["missing"].append("images")
    else:
        if out["registry"]:
            t = time.monotonic()
            out["images"] = images.ensure_images(cache, layout.root, C.REGISTRY)
            _log(quiet, f"images ready ({time.monotonic() - t:.1f} s)")


def desired_knobs(
    layout: C.Layout, overrides: Mapping[str, Any], environ: Mapping[str, str]
) -> C.Knobs:
    """Explicit knobs (env, then ``overrides``) on top of defaults; none -> keep the running ones."""
    explicit = {**C.knobs_from_env(environ), **overrides}
    if explicit:
        return C.Knobs().replace(**explicit)
    prev = read_state(layout)
    pids = PidRegistry(layout.root)
    if prev and pids.alive("slurmctld") is not None:
        return C.Knobs.from_dict(prev.get("knobs", {}))
    return C.Knobs()


def up(
    overrides: Optional[Mapping[str, Any]] = None,
    *,
    quiet: bool = False,
    environ: Optional[Mapping[str, str]] = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Bring the testbed up (idempotent); returns the testbed.json content.

    The result's ``started`` is True when this call started slurmctld (the testbed
    was down), so a caller knows whether it should bring it down again.
    """
    env = os.environ if environ is None else environ
    if os.geteuid() != 0:
        raise RuntimeError("the testbed needs root (it starts daemons and creates the test user)")
    t0 = time.monotonic()
    layout = C.Layout(C.state_dir(env))
    cache = C.cache_dir(env)
    layout.root.mkdir(parents=True, exist_ok=True)
    with flock(layout.lock):
        knobs = desired_knobs(layout, overrides or {}, env).validate()
        pids = PidRegistry(layout.root)
        was_up = pids.alive("slurmctld") is not None
        user = users.ensure_user()
        prev = read_state(layout)
        if not (was_up and prev and prev.get("user", {}).get("uid") == user.uid):
            users.check_readable(user)
        slurm.ensure_hosts(knobs)
        slurm.make_dirs(layout, knobs)
        changed = slurm.write_configs(layout, knobs)
        slurm.ensure_munge(layout, pids)
        if knobs.accounting:
            accounting.ensure_accounting(layout, pids, user)
        else:
            accounting.stop_accounting(pids)
        restart = changed and was_up
        old_knobs = C.Knobs.from_dict(prev.get("knobs", {})) if prev else None
        if restart and old_knobs and C.reconfigure_only(old_knobs, knobs):
            # MinJobAge / MaxArraySize: `scontrol reconfigure`, no daemon restart.
            slurm.reconfigure(layout, knobs)
            restart = False
            _log(quiet, "configuration changed: scontrol reconfigure")
        elif restart:
            _log(quiet, "configuration changed: restarting slurmctld and slurmd")
        slurm.ensure_slurm(layout, pids, knobs, restart=restart)
        if not was_up or restart:
            _log(quiet, f"slurm up: nodes {slurm.node_states(layout)}")
        side = _images_side(layout, cache, pids, user, quiet)
        envd = C.env_vars(
            layout,
            Path(side["bin_dir"]) if side["bin_dir"] else None,
            str(user.home),
            user.name,
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        )
        state = {
            "schema": SCHEMA,
            "state_dir": str(layout.root),
            "cache_dir": str(cache),
            "slurm_conf": str(layout.slurm_conf),
            "munge_socket": str(layout.munge_socket),
            "cluster": C.CLUSTER,
            "account": C.ACCOUNT,
            "controller": f"{slurm.ctld_hostname()}:{C.CTLD_PORT}",
            "user": user.to_dict(),
            "repo": str(users.REPO),
            "bin_dir": side["bin_dir"],
            "apptainer": str(Path(side["bin_dir"]) / "apptainer") if side["bin_dir"] else None,
            "registry": side["registry"],
            "images": side["images"],
            "missing": side["missing"],
            "error": side.get("error"),
            "nodes": {
                n: {
                    "hostname": n,
                    "addr": "127.0.0.1",
                    "port": C.slurmd_port(n),
                    "tmpfs": str(layout.tmpfs / n),
                    "gpus": [str(p) for p in C.gpu_files(layout, n, knobs.gpus)],
                }
                for n in C.node_names(knobs)
            },
            "knobs": knobs.to_dict(),
            "accounting": {
                "enabled": knobs.accounting,
                "slurmdbd_port": C.DBD_PORT if knobs.accounting else None,
                "mariadb_port": C.MARIADB_PORT if knobs.accounting else None,
            },
            "env": envd,
            "pids": {n: pids.get(n) for n in pids.names()},
            "logs": str(layout.log),
        }
        prev_started = (prev or {}).get("up_since") if was_up else None
        state["up_since"] = prev_started or time.time()
        text = json.dumps(state, indent=2, sort_keys=True) + "\n"
        slurm.write_if_changed(layout.json, text)
        slurm.write_if_changed(layout.env_sh, C.env_sh(envd))
    state["started"] = not was_up
    _log(quiet, f"up ({time.monotonic() - t0:.1f} s); state in {layout.json}")
    if strict and (state["error"] or state["missing"]):
        raise RuntimeError(
            f"Slurm is up but the image side is not: {state['error'] or state['missing']}"
        )
    return state


def _owns_test_user() -> bool:
    """Whether this testbed may treat every test-user squashfuse as its own.

    squashfuse_ll runs with a scrubbed environment, so only its uid ties it to the
    testbed.  A secondary testbed (HPCBRIDGE_TESTBED_PORT_OFFSET set, e.g. the
    benchmark's) shares the test user with the main one and must not touch them.
    """
    return C.PORT_OFFSET == 0


def _stop_squashfuse(layout: C.Layout) -> None:
    if not _owns_test_user():
        return
    try:
        from tests.testbed import apptainer
    except ImportError:
        return
    stop = getattr(apptainer, "stop_stray_squashfuse", None)
    if callable(stop):
        stop(layout.root)


def down(*, quiet: bool = False, environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Stop every daemon the testbed recorded, by PID; returns the names stopped."""
    env = os.environ if environ is None else environ
    layout = C.Layout(C.state_dir(env))
    if not layout.root.is_dir():
        return []
    stopped: list[str] = []
    with flock(layout.lock):
        pids = PidRegistry(layout.root)
        if pids.alive("slurmctld") is not None:
            slurm.cancel_all_jobs(layout)
        order = [n for n in pids.names() if n.startswith("slurmd-")]
        order += ["slurmctld", "slurmdbd", "mariadbd", "registry", "munged"]
        order += [n for n in pids.names() if n not in order]
        for name in order:
            if pids.stop(name, timeout=30 if name == "mariadbd" else 10):
                stopped.append(name)
                _log(quiet, f"stopped {name}")
        _stop_squashfuse(layout)
        uid = _test_uid() if _owns_test_user() else None
        stray = [
            p.pid
            for p in testbed_processes(layout.root, uid)
            if p.comm.startswith(("slurmstepd", "squashfuse"))
        ]
        if stray:
            stop_pids(stray)
            _log(quiet, f"stopped stray job processes {stray}")
    return stopped


def _test_uid() -> Optional[int]:
    try:
        return pwd.getpwnam(users.USER_NAME).pw_uid
    except KeyError:
        return None


def leftovers(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Descriptions of testbed daemons still running (empty when clean)."""
    env = os.environ if environ is None else environ
    layout = C.Layout(C.state_dir(env))
    found = testbed_processes(layout.root, _test_uid() if _owns_test_user() else None)
    return [f"{p.pid} {p.comm} ({p.state}) uid={p.uid}: {' '.join(p.cmdline)[:200]}" for p in found]


def status(environ: Optional[Mapping[str, str]] = None) -> tuple[bool, str]:
    """(healthy?, a human-readable report)."""
    env = os.environ if environ is None else environ
    layout = C.Layout(C.state_dir(env))
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
    reg = state.get("registry")
    if reg:
        try:
            from tests.testbed import registry

            ok = registry.registry_ready(reg)
        except ImportError:
            ok = False
        lines.append(f"registry {reg}: {'answers' if ok else 'NO ANSWER'}")
        healthy &= ok
    lines.append(f"images: {', '.join(sorted(state.get('images', {}))) or 'none'}")
    lines.append(f"knobs: {json.dumps(knobs.to_dict(), sort_keys=True)}")
    lines.append(f"source {layout.env_sh}  # to use it by hand")
    return healthy, "\n".join(lines)


def sinfo_text(layout: C.Layout) -> str:
    done = runner.run(["sinfo"], env=slurm.client_env(layout), check=False, timeout=10)
    return done.stdout + done.stderr
