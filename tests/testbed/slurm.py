"""Slurm side of the testbed: munged, slurmctld and one slurmd per fake node.

Each slurmd runs in its own UTS namespace with hostname ``nX`` (``unshare --uts``),
so ``srun hostname`` on two nodes prints two names; all nodes listen on 127.0.0.1
on distinct ports.  Daemons are started in the foreground, detached, and recorded
by PID (see procs.py).  On a 26.05 testbed slurmctld and slurmd are the Debian sid
binaries, started through the pivot_root sandbox of sid.py, and the clients are the
wrappers in ``<state>/sid/bin`` (first on ``client_env``'s PATH); munged is the host's.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from hpcbridge import runner
from hpcbridge.errors import CommandTimeout
from tests.testbed import config as C
from tests.testbed import sid
from tests.testbed.procs import PidRegistry, start_daemon, wait_for

OK_NODE_STATES = ("idle", "mix", "mixed", "alloc", "allocated", "comp", "completing")


def daemon_env(layout: C.Layout) -> dict[str, str]:
    """Environment of the Slurm daemons (names the state dir, so ``leftovers`` finds them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_CONF"] = str(layout.slurm_conf)
    env["HPCBRIDGE_TESTBED_DIR"] = str(layout.root)
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def client_env(layout: C.Layout) -> dict[str, str]:
    """Environment for running Slurm clients as root (the sid wrappers first on 26.05)."""
    env = daemon_env(layout)
    if sid.is_sid(layout):
        env["PATH"] = f"{layout.sid_bin}:{env['PATH']}"
    return env


def make_dirs(layout: C.Layout, knobs: C.Knobs) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o755)
    for d in (layout.etc, layout.log, layout.slurm_dir, layout.ctld_state, layout.spool):
        d.mkdir(parents=True, exist_ok=True)
    layout.munge_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.munge_dir, 0o755)
    layout.tmpfs.mkdir(parents=True, exist_ok=True)
    for node in C.node_names(knobs):
        (layout.spool / node).mkdir(parents=True, exist_ok=True)
        tmp = layout.tmpfs / node
        tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o1777)
        make_gpu_devices(layout, node, knobs.gpus)


def make_gpu_devices(layout: C.Layout, node: str, gpus: int) -> None:
    """Character devices standing in for GPUs (slurmd ignores plain files)."""
    ddir = layout.dev / node
    ddir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(C.gpu_files(layout, node, gpus)):
        try:
            st = path.lstat()
            if stat.S_ISCHR(st.st_mode):
                continue
            path.unlink()
        except FileNotFoundError:
            pass
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, i))


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    tmp.replace(path)
    return True


def write_configs(layout: C.Layout, knobs: C.Knobs) -> bool:
    """Write slurm.conf, gres.conf, plugstack.conf, cgroup.conf; True if any changed."""
    changed = write_if_changed(layout.slurm_conf, C.slurm_conf(layout, knobs, ctld_hostname()))
    changed |= write_if_changed(layout.gres_conf, C.gres_conf(layout, knobs))
    changed |= write_if_changed(layout.plugstack_conf, "# no SPANK plugins on the testbed\n")
    changed |= write_if_changed(layout.cgroup_conf, C.cgroup_conf(knobs))
    return changed


def ctld_hostname() -> str:
    return socket.gethostname().split(".")[0]


def ensure_hosts(knobs: C.Knobs, hosts: Path = Path("/etc/hosts")) -> None:
    """Make n1..nN resolve to 127.0.0.1 through a marked, idempotent /etc/hosts block."""
    text = hosts.read_text()
    new = C.with_hosts_block(text, C.hosts_block(knobs))
    if new != text:
        # /etc/hosts may be a bind mount: rewrite in place rather than rename over it.
        with open(hosts, "w") as fh:
            fh.write(new)


# ---------------------------------------------------------------- munge


def ensure_munge(layout: C.Layout, pids: PidRegistry) -> int:
    if not layout.munge_key.exists():
        runner.run(["mungekey", "-c", "-f", "-k", str(layout.munge_key)])
        os.chmod(layout.munge_key, 0o400)
    pid = pids.alive("munged")
    if pid is not None and layout.munge_socket.exists():
        return pid
    pids.stop("munged")
    layout.munge_socket.unlink(missing_ok=True)
    argv = [
        "munged",
        "--foreground",
        "--force",
        f"--key-file={layout.munge_key}",
        f"--socket={layout.munge_socket}",
        f"--pid-file={layout.munge_dir / 'munged.pid'}",
        f"--log-file={layout.log / 'munged.log'}",
        f"--seed-file={layout.munge_dir / 'munged.seed'}",
    ]
    pid = start_daemon(pids, "munged", argv, layout.log / "munged.out", env=daemon_env(layout))
    wait_for("munged", lambda: munge_works(layout), 15, pid=pid)
    return pid


def munge_works(layout: C.Layout) -> bool:
    if not layout.munge_socket.exists():
        return False
    done = runner.run(["munge", "-n", "-S", str(layout.munge_socket)], check=False, timeout=10)
    return done.ok


# ---------------------------------------------------------------- slurmctld / slurmd


def start_slurmctld(layout: C.Layout, pids: PidRegistry) -> int:
    argv = ["slurmctld", "-D", "-f", str(layout.slurm_conf)]
    if sid.is_sid(layout):
        argv = sid.daemon_argv(layout, None, ["/usr/sbin/slurmctld", *argv[1:]])
    pid = start_daemon(
        pids, "slurmctld", argv, layout.log / "slurmctld.out", env=daemon_env(layout)
    )
    wait_for("slurmctld", lambda: ctld_answers(layout), 30, pid=pid)
    return pid


def start_slurmd(layout: C.Layout, pids: PidRegistry, node: str) -> int:
    # unshare and both shells exec, so the recorded PID is slurmd's own.
    conf = str(layout.slurm_conf)
    if sid.is_sid(layout):
        argv = sid.daemon_argv(layout, node, ["/usr/sbin/slurmd", "-D", "-N", node, "-f", conf])
        log = layout.log / f"slurmd-{node}.out"
        return start_daemon(pids, f"slurmd-{node}", argv, log, env=daemon_env(layout))
    argv = [
        "unshare",
        "--uts",
        "sh",
        "-c",
        'hostname "$0" && exec "$@"',
        node,
        "slurmd",
        "-D",
        "-N",
        node,
        "-f",
        str(layout.slurm_conf),
    ]
    return start_daemon(
        pids, f"slurmd-{node}", argv, layout.log / f"slurmd-{node}.out", env=daemon_env(layout)
    )


def ctld_answers(layout: C.Layout) -> bool:
    try:
        done = runner.run(["scontrol", "ping"], env=client_env(layout), check=False, timeout=10)
    except CommandTimeout:  # a 26.05 client keeps retrying while slurmctld is down
        return False
    return done.ok and "UP" in done.stdout


def node_states(layout: C.Layout) -> dict[str, str]:
    try:
        done = runner.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], env=client_env(layout), check=False, timeout=10
        )
    except CommandTimeout:
        return {}
    if not done.ok:
        return {}
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def nodes_ready(layout: C.Layout, knobs: C.Knobs) -> bool:
    states = node_states(layout)
    want = C.node_names(knobs)
    return sorted(states) == sorted(want) and all(
        states[n].rstrip("~#$@^-+") in OK_NODE_STATES for n in want
    )


def resume_nodes(layout: C.Layout, knobs: C.Knobs) -> None:
    """Nodes left DOWN/DRAIN from an earlier life: resume them (ReturnToService=2 mostly does)."""
    for node, st in node_states(layout).items():
        if st.startswith(("down", "drain", "drng", "fail")) and not st.endswith("*"):
            runner.run(
                ["scontrol", "update", f"NodeName={node}", "State=RESUME"],
                env=client_env(layout),
                check=False,
            )


def slurm_daemons(knobs: C.Knobs) -> list[str]:
    return ["slurmctld", *(f"slurmd-{n}" for n in C.node_names(knobs))]


def ensure_slurm(layout: C.Layout, pids: PidRegistry, knobs: C.Knobs, restart: bool) -> None:
    """Start whatever Slurm daemon is not running; with ``restart`` restart them all."""
    if restart:
        stop_slurm(layout, pids, cancel_jobs=False)
    # Nodes of a larger earlier configuration: stop their slurmd.
    for name in pids.names():
        if name.startswith("slurmd-") and name not in slurm_daemons(knobs):
            pids.stop(name)
    if pids.alive("slurmctld") is None:
        pids.forget("slurmctld")
        if knobs.accounting and knobs.slurm != "22.05":
            # 23.x+ keeps a ClusterID in StateSaveLocation; one made while accounting was
            # off does not match slurmdbd's ("fatal: CLUSTER ID MISMATCH"): take slurmdbd's.
            (layout.ctld_state / "clustername").unlink(missing_ok=True)
        start_slurmctld(layout, pids)
    for node in C.node_names(knobs):
        if pids.alive(f"slurmd-{node}") is None:
            pids.forget(f"slurmd-{node}")
            start_slurmd(layout, pids, node)
    deadline = time.monotonic() + 60
    while not nodes_ready(layout, knobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not idle within 60 s: {node_states(layout)}")
        for node in C.node_names(knobs):
            if pids.alive(f"slurmd-{node}") is None:
                log = layout.log / f"slurmd-{node}.out"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"slurmd for {node} exited; {log}:\n{tail}")
        resume_nodes(layout, knobs)
        time.sleep(0.2)


def cancel_all_jobs(layout: C.Layout, timeout: float = 20) -> None:
    env = client_env(layout)
    done = runner.run(["squeue", "-h", "-o", "%A"], env=env, check=False, timeout=10)
    ids = sorted(set(done.stdout.split())) if done.ok else []
    if not ids:
        return
    runner.run(["scancel", *ids], env=env, check=False, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = runner.run(["squeue", "-h", "-o", "%A"], env=env, check=False, timeout=10)
        if not done.ok or not done.stdout.strip():
            return
        time.sleep(0.3)


def stop_slurm(layout: C.Layout, pids: PidRegistry, cancel_jobs: bool) -> None:
    if cancel_jobs and pids.alive("slurmctld") is not None:
        cancel_all_jobs(layout)
    for name in pids.names():
        if name.startswith("slurmd-"):
            pids.stop(name)
    pids.stop("slurmctld")


def scontrol_show_config(env: Mapping[str, str]) -> dict[str, str]:
    done = runner.run(["scontrol", "show", "config"], env=env, check=False, timeout=10)
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if " = " in line:
            key, _, value = line.partition(" = ")
            out[key.strip()] = value.strip()
    return out


def reconfigure(layout: C.Layout, knobs: C.Knobs, timeout: float = 30) -> None:
    """``scontrol reconfigure`` and wait until slurmctld reports the new values."""
    env = client_env(layout)
    runner.run(["scontrol", "reconfigure"], env=env, timeout=60)
    want = {"MinJobAge": f"{knobs.min_job_age} sec"}
    deadline = time.monotonic() + timeout
    while True:
        conf = scontrol_show_config(env)
        if all(conf.get(k) == v for k, v in want.items()):
            return
        if time.monotonic() > deadline:
            got = {k: conf.get(k) for k in want}
            raise TimeoutError(f"scontrol reconfigure: slurmctld still reports {got}, want {want}")
        time.sleep(0.2)
