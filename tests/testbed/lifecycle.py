"""``up`` / ``down`` of one testbed cluster (``status`` / ``leftovers``: health.py).

``up`` holds an exclusive flock on ``<state>/.lock`` so concurrent callers queue
instead of racing; when everything already runs it only checks (well under a second
plus whatever the image side needs to confirm its cache).  The knob ``slurm`` picks
the release and with it the default state dir: 22.05 in /var/tmp/hpcbridge-testbed,
26.05 in /var/tmp/hpcbridge-testbed-2605 (own ports, munge, slurm.conf), so both can
run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from tests.testbed import accounting, sid, slurm, users
from tests.testbed import config as C
from tests.testbed.health import (
    hand_over_registry,
    leftovers,
    owns_test_user,
    read_state,
    recorded_release,
    sinfo_text,
    status,
    testuser_uid,
)
from tests.testbed.knobs import SID_ONLY
from tests.testbed.procs import PidRegistry, stop_pids, testbed_processes

__all__ = ["down", "flock", "leftovers", "read_state", "sinfo_text", "status", "up"]

SCHEMA = 1
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


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


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"testbed: {msg}", flush=True)


def _images_side(
    layout: C.Layout, cache: Path, pids: PidRegistry, bin_dir: Optional[str], quiet: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"bin_dir": bin_dir, "registry": None, "images": {}, "missing": []}
    try:
        _images_side_inner(layout, cache, pids, quiet, out)
    except Exception as exc:  # the Slurm side stays usable; up() reports the failure
        out["error"] = f"{type(exc).__name__}: {exc}"
        _log(quiet, f"image side FAILED: {out['error']}")
    return out


def _images_side_inner(
    layout: C.Layout, cache: Path, pids: PidRegistry, quiet: bool, out: dict[str, Any]
) -> None:
    """Apptainer wrapper, registry and test images (tests/testbed/{apptainer,registry,images}.py).

    The 26.05 testbed brings its own Apptainer wrapper (``out['bin_dir']``, sid.py).
    """
    from tests.testbed import apptainer, images, registry

    if out["bin_dir"] is None:
        t = time.monotonic()
        user = users.ensure_user()
        extra = [layout.root, users.REPO]
        out["bin_dir"] = str(apptainer.ensure_apptainer(cache, layout.root, user.uid, extra))
        _log(quiet, f"apptainer wrapper in {out['bin_dir']} ({time.monotonic() - t:.1f} s)")
    if not registry.registry_ready(C.REGISTRY):
        pids.forget("registry")
        pid = registry.start_registry(layout.root, cache)
        pids.record("registry", pid, ["docker-registry"])
        _log(quiet, f"registry started (pid {pid})")
    out["registry"] = C.REGISTRY
    t = time.monotonic()
    out["images"] = images.ensure_images(cache, layout.root, C.REGISTRY)
    _log(quiet, f"images ready ({time.monotonic() - t:.1f} s)")


def desired_knobs(
    layout: C.Layout, overrides: Mapping[str, Any], environ: Mapping[str, str]
) -> C.Knobs:
    """Explicit knobs (env, then ``overrides``) on top of the release's defaults; none ->
    keep the running ones.  ``slurm`` alone only names the release (it resets nothing)."""
    from_env = C.knobs_from_env(environ)
    explicit = {**from_env, **overrides}
    prev = read_state(layout)
    running = prev is not None and PidRegistry(layout.root).alive("slurmctld") is not None
    release = str(explicit.pop("slurm", "") or recorded_release(prev))
    if release == "22.05":  # e.g. HPCBRIDGE_TESTBED_RATE_LIMIT=on meant for the 26.05 cluster
        for name in SID_ONLY:
            if name in from_env and name not in overrides:
                del explicit[name]
    if explicit:
        return C.default_knobs(release).replace(**explicit)
    if running and prev and recorded_release(prev) == release:
        return C.Knobs.from_dict(prev.get("knobs", {}))
    return C.default_knobs(release)


def _check_release(layout: C.Layout, prev: Optional[dict[str, Any]], release: str) -> None:
    if prev is not None and recorded_release(prev) != release:
        raise RuntimeError(
            f"{layout.root} holds the Slurm {recorded_release(prev)} testbed, not {release}: "
            f"leave HPCBRIDGE_TESTBED_DIR unset (the {release} default is "
            f"{C.DEFAULT_STATES[release]}) or point it to another directory"
        )


def up(
    overrides: Optional[Mapping[str, Any]] = None,
    *,
    quiet: bool = False,
    environ: Optional[Mapping[str, str]] = None,
    strict: bool = False,
    state_dir: Optional[Path] = None,
) -> dict[str, Any]:
    """Bring the testbed up (idempotent); returns the testbed.json content.

    ``state_dir`` defaults to the one of the release asked for (``overrides['slurm']``,
    $HPCBRIDGE_TESTBED_SLURM, else 22.05; see ``C.state_dir``).  The result's
    ``started`` is True when this call started slurmctld (the testbed was down), so a
    caller knows whether it should bring it down again.
    """
    env = os.environ if environ is None else environ
    if os.geteuid() != 0:
        raise RuntimeError("the testbed needs root (it starts daemons and creates the test user)")
    t0 = time.monotonic()
    wanted = dict(overrides or {})
    root = state_dir or C.state_dir(env, C.release_from(wanted, env))
    layout = C.Layout(Path(root))
    cache = C.cache_dir(env)
    layout.root.mkdir(parents=True, exist_ok=True)
    with flock(layout.lock):
        knobs = desired_knobs(layout, wanted, env).validate()
        prev = read_state(layout)
        _check_release(layout, prev, knobs.slurm)
        pids = PidRegistry(layout.root)
        was_up = pids.alive("slurmctld") is not None
        user = users.ensure_user()
        if not (was_up and prev and prev.get("user", {}).get("uid") == user.uid):
            users.check_readable(user)
        slurm.ensure_hosts(knobs)
        slurm.make_dirs(layout, knobs)
        sid_info: dict[str, Any] = {}
        if knobs.slurm != "22.05":
            t = time.monotonic()
            extra = [users.REPO]
            sid_info = sid.ensure_sid(
                cache, layout, (user.uid, user.gid), extra, knobs.cgroups, running=was_up
            )
            if knobs.cgroups and not sid_info["cgroups_usable"]:
                knobs = knobs.replace(cgroups=False)
            _log(quiet, f"Slurm 26.05 rootfs and wrappers ready ({time.monotonic() - t:.1f} s)")
        _start_slurm(layout, pids, knobs, user, prev, was_up, quiet)
        side = _images_side(layout, cache, pids, sid_info.get("bin_dir"), quiet)
        state = _state(layout, cache, knobs, user, side, sid_info, pids)
        prev_started = (prev or {}).get("up_since") if was_up else None
        state["up_since"] = prev_started or time.time()
        text = json.dumps(state, indent=2, sort_keys=True) + "\n"
        slurm.write_if_changed(layout.json, text)
        slurm.write_if_changed(layout.env_sh, C.env_sh(state["env"]))
    state["started"] = not was_up
    _log(quiet, f"up ({time.monotonic() - t0:.1f} s); state in {layout.json}")
    if strict and (state["error"] or state["missing"]):
        raise RuntimeError(
            f"Slurm is up but the image side is not: {state['error'] or state['missing']}"
        )
    return state


def _start_slurm(
    layout: C.Layout,
    pids: PidRegistry,
    knobs: C.Knobs,
    user: users.User,
    prev: Optional[dict[str, Any]],
    was_up: bool,
    quiet: bool,
) -> None:
    """Configs, munge, accounting, then slurmctld and the slurmd's (restarted on a change)."""
    changed = slurm.write_configs(layout, knobs)
    slurm.ensure_munge(layout, pids)
    if knobs.accounting:
        accounting.ensure_accounting(layout, pids, user, knobs.slurm)
    else:
        accounting.stop_accounting(pids)
    restart = changed and was_up
    old_knobs = C.Knobs.from_dict(prev.get("knobs", {})) if prev else None
    if restart and old_knobs and C.reconfigure_only(old_knobs, knobs):
        # MinJobAge on 22.05: `scontrol reconfigure`, no daemon restart.
        slurm.reconfigure(layout, knobs)
        restart = False
        _log(quiet, "configuration changed: scontrol reconfigure")
    elif restart:
        _log(quiet, "configuration changed: restarting slurmctld and slurmd")
    slurm.ensure_slurm(layout, pids, knobs, restart=restart)
    if not was_up or restart:
        _log(quiet, f"slurm {knobs.slurm} up: nodes {slurm.node_states(layout)}")


def _state(
    layout: C.Layout,
    cache: Path,
    knobs: C.Knobs,
    user: users.User,
    side: dict[str, Any],
    sid_info: dict[str, Any],
    pids: PidRegistry,
) -> dict[str, Any]:
    """The testbed.json content (everything a test or a person needs)."""
    port = C.ports(knobs.slurm)
    envd = C.env_vars(
        layout,
        Path(side["bin_dir"]) if side["bin_dir"] else None,
        str(user.home),
        user.name,
        PATH,
        knobs.slurm,
    )
    return {
        "schema": SCHEMA,
        "state_dir": str(layout.root),
        "cache_dir": str(cache),
        "slurm_conf": str(layout.slurm_conf),
        "munge_socket": str(layout.munge_socket),
        "cluster": C.CLUSTERS[knobs.slurm],
        "account": C.ACCOUNT,
        "controller": f"{slurm.ctld_hostname()}:{port.ctld}",
        "slurm": _slurm_facts(layout, knobs, sid_info),
        "user": user.to_dict(),
        "repo": str(users.REPO),
        "bin_dir": side["bin_dir"],
        "slurm_bin": sid_info.get("slurm_bin"),  # 26.05: the client wrappers alone
        "apptainer": str(Path(side["bin_dir"]) / "apptainer") if side["bin_dir"] else None,
        "registry": side["registry"],
        "images": side["images"],
        "missing": side["missing"],
        "error": side.get("error"),
        "nodes": {
            n: {
                "hostname": n,
                "addr": "127.0.0.1",
                "port": port.slurmd(n),
                "tmpfs": str(layout.tmpfs / n),
                "gpus": [str(p) for p in C.gpu_files(layout, n, knobs.gpus)],
            }
            for n in C.node_names(knobs)
        },
        "knobs": knobs.to_dict(),
        "accounting": {
            "enabled": knobs.accounting,
            "slurmdbd_port": port.dbd if knobs.accounting else None,
            "mariadb_port": port.mariadb if knobs.accounting else None,
        },
        "env": envd,
        "pids": {n: pids.get(n) for n in pids.names()},
        "logs": str(layout.log),
    }


def _slurm_facts(layout: C.Layout, knobs: C.Knobs, sid_info: dict[str, Any]) -> dict[str, Any]:
    if knobs.slurm == "22.05":
        return {
            "release": knobs.slurm,
            "packages": "host (Debian 12)",
            "memory_enforcement": "jobacct_gather/linux OverMemoryKill (task/none, no cgroups)",
            "rate_limit": None,
        }
    versions = sid_info.get("versions", {})
    rl = None
    if knobs.rate_limit:
        rl = {
            "bucket_size": knobs.rl_bucket_size,
            "refill_rate": knobs.rl_refill_rate,
            "refill_period": knobs.rl_refill_period,
            "log": str(layout.log / "slurmctld.log"),
        }
    return {
        "release": knobs.slurm,
        "version": versions.get("slurmctld"),
        "packages": "Debian sid rootfs",
        "versions": versions,
        "rootfs": sid_info.get("rootfs"),
        "sandbox": sid_info.get("sandbox"),
        "cgroups": sid_info.get("cgroups") if knobs.cgroups else None,
        "memory_enforcement": sid_info.get("enforcement", ""),
        "rate_limit": rl,
    }


def down(
    *,
    quiet: bool = False,
    environ: Optional[Mapping[str, str]] = None,
    state_dir: Optional[Path] = None,
) -> list[str]:
    """Stop every daemon the testbed recorded, by PID; returns the names stopped."""
    env = os.environ if environ is None else environ
    layout = C.Layout(Path(state_dir or C.state_dir(env)))
    if not layout.root.is_dir():
        return []
    stopped: list[str] = []
    with flock(layout.lock):
        pids = PidRegistry(layout.root)
        if pids.alive("slurmctld") is not None:
            slurm.cancel_all_jobs(layout)
        other = hand_over_registry(layout, pids, env)
        if other:
            _log(quiet, f"registry left running for the testbed in {other}")
        order = [n for n in pids.names() if n.startswith("slurmd-")]
        order += ["slurmctld", "slurmdbd", "mariadbd", "registry", "munged"]
        order += [n for n in pids.names() if n not in order]
        for name in order:
            if pids.stop(name, timeout=30 if name == "mariadbd" else 10):
                stopped.append(name)
                _log(quiet, f"stopped {name}")
        owner = owns_test_user(layout.root, env)
        if owner:
            from tests.testbed import apptainer

            apptainer.stop_stray_squashfuse(layout.root, [u] if (u := testuser_uid()) else None)
        uid = testuser_uid() if owner else None
        stray = [
            p.pid
            for p in testbed_processes(layout.root, uid)
            if p.comm.startswith(("slurmstepd", "squashfuse"))
        ]
        if stray:
            stop_pids(stray)
            _log(quiet, f"stopped stray job processes {stray}")
        if sid.is_sid(layout):
            left = sid.remove_cgroups(layout)
            if left:
                _log(quiet, f"cgroup directories still busy: {left}")
    return stopped
