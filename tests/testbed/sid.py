"""Slurm 26.05 for the testbed: Debian sid packages in a root filesystem of their own.

``ensure_sid`` debootstraps (once, cached with a stamp like the Apptainer rootfs) a sid
rootfs with slurmctld, slurmd, slurmdbd, the clients, munge and Apptainer, and writes
into ``<state>/sid``:

- ``sandbox.sh``: the daemons start as ``unshare --mount --uts --propagation private sh
  sandbox.sh HOST CMD...``; the script binds /proc, /sys, /dev, /tmp, /home, /var/tmp,
  the cache, the repo, passwd/group/shadow/hosts (slurmd's ``su -`` for
  ``--get-user-env`` needs the test user's shadow entry) and the host's Python
  (:func:`host_python`) into the rootfs, mounts a private /run,
  ``pivot_root``\\ s into it and execs CMD.  pivot_root, not chroot: a process in a
  chroot cannot create a user namespace (clone(2) EPERM), and jobs run rootless
  Apptainer.  ``unshare`` and ``sh`` exec, so the recorded PID is the daemon's own
  (bwrap would stay behind as the daemon's parent).
  With cgroups on, /sys/fs/cgroup inside is a tmpfs holding, as ``memory``, ``freezer``
  and ``cpuacct``, this testbed's own directory of each cgroup-v1 hierarchy
  (``/sys/fs/cgroup/<controller>/hpcbtb_<state dir>``): Slurm's cgroup/v1 plugin takes it
  for the hierarchy's root, so two testbeds never share a Slurm cgroup tree.
- ``bin/``: wrappers of the clients (sbatch, squeue, sacct, scontrol, srun, scancel, ...)
  and of ``apptainer``/``singularity`` that run the sid binaries through bwrap as the
  caller; inside the rootfs (a job) they exec /usr/bin/<name> directly.  ``slurm-bin/``
  links to the client wrappers alone (a login node without the runtime).

The Debian sid Slurm has no mpi/pmix plugin (``srun --mpi=list``: none, pmi2,
cray_shasta) and the rootfs has no MPI: jobs on 26.05 see the sid userland (bash,
coreutils, Apptainer) and the host's Python at its own paths, so a venv made on the
host (the "login node") runs in jobs, as on a site whose nodes share one OS image.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import sysconfig
from pathlib import Path
from typing import Any, Optional

from tests.testbed import apptainer as A
from tests.testbed import config as C

SID_PACKAGES = (
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "slurm-client",
    "munge",
    "libexpat1",  # what the host's Python links that minbase sid lacks (host_python)
    "libffi8",
    "bubblewrap",  # tests put another squashfuse under a job's Apptainer (test_convert_zstd)
    *A.PACKAGES,  # apptainer, squashfuse, fuse3, ...: jobs run the rootfs's Apptainer
)
SLURM_ROOTFS = A.RootfsSpec(
    "slurm-26.05-rootfs",
    SID_PACKAGES,
    (
        "usr/sbin/slurmctld",
        "usr/sbin/slurmd",
        "usr/sbin/slurmdbd",
        "usr/bin/sbatch",
        "usr/bin/apptainer",
        "usr/bin/squashfuse_ll",
    ),
)
MARKER = "/etc/hpcbridge-testbed-sid"  # exists inside the rootfs only
CLIENTS = (
    "sacct",
    "sacctmgr",
    "salloc",
    "sattach",
    "sbatch",
    "sbcast",
    "scancel",
    "scontrol",
    "scrontab",
    "sdiag",
    "sinfo",
    "sprio",
    "squeue",
    "sreport",
    "srun",
    "sshare",
    "sstat",
    "strigger",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# what Slurm's cgroup/v1 plugin opens: cpuset (slurmd aborts its cgroup set-up without
# it), memory (task/cgroup), freezer (proctrack/cgroup), cpuacct (jobacct_gather/cgroup)
CGROUP_CONTROLLERS = ("cpuset", "memory", "freezer", "cpuacct")


def host_python() -> tuple[Path, Path]:
    """The host's Python interpreter and standard library (shown in the rootfs at the same
    paths; the rootfs's ``python3`` links to the interpreter)."""
    exe = Path(os.path.realpath(sys.executable))
    return exe, Path(sysconfig.get_paths()["stdlib"])


def _python_placeholders(rootfs: Path, exe: Path, stdlib: Path) -> None:
    """Mount points for :func:`host_python` in the rootfs, and ``python3`` -> the interpreter."""
    (rootfs / stdlib.relative_to("/")).mkdir(parents=True, exist_ok=True)
    target = rootfs / exe.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(exist_ok=True)
    link = target.with_name("python3")
    if not link.exists() and not link.is_symlink() and exe.name != "python3":
        link.symlink_to(exe.name)


def cgroup_name(layout: C.Layout) -> str:
    """This testbed's directory name in every cgroup-v1 hierarchy."""
    return "hpcbtb" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(layout.root))


def sandbox_script(rootfs: Path, binds: list[Path], cgroup: Optional[str]) -> str:
    """The daemons' pivot_root sandbox (POSIX sh; run inside a new mount + UTS namespace)."""
    q = shlex.quote
    dirs = " ".join(q(str(d)) for d in ["/tmp", "/home", "/var/tmp", *binds])
    cg = ""
    if cgroup:
        ctl = " ".join(CGROUP_CONTROLLERS)
        cg = f"""# cgroup v1: the daemon joins this testbed's directory of each hierarchy, which is
# all it sees of it (bind mount) and, through a cgroup namespace, its root
mount -t tmpfs -o mode=0755 hpcbtb-cgroup "$R/sys/fs/cgroup"
for c in {ctl}; do
  echo $$ >"{CGROUP_ROOT}/$c/{cgroup}/cgroup.procs"
  mkdir -p "$R/sys/fs/cgroup/$c"
  mount --bind "{CGROUP_ROOT}/$c/{cgroup}" "$R/sys/fs/cgroup/$c"
done
"""
    return f"""#!/bin/sh
# hpcbridge testbed: a Slurm 26.05 daemon from the Debian sid rootfs, in a pivot_root
# sandbox.  Generated by tests/testbed/sid.py; do not edit.
# Usage: unshare --mount --uts --propagation private sh sandbox.sh HOSTNAME|- CMD [ARG]...
set -e
R={q(str(rootfs))}
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 hpcbtb-run "$R/run"
for d in {dirs}; do mount --rbind "$d" "$R$d"; done
for f in /etc/passwd /etc/group /etc/shadow /etc/hosts; do mount --bind "$f" "$R$f"; done
{cg}[ "$1" = - ] || hostname "$1"
shift
cd "$R"
pivot_root . .oldroot
cd /
umount -l /.oldroot
exec {"unshare --cgroup " if cgroup else ""}"$@"
"""


def client_wrapper(rootfs: Path, binds: list[Path], exe: str) -> str:
    """A client command of the sid Slurm, run through bwrap as the caller (POSIX sh)."""
    q = shlex.quote
    bind_args = " ".join(f"--bind {q(str(b))} {q(str(b))}" for b in binds)
    seen = "|".join(f"{q(str(d))}|{q(str(d))}/*" for d in ["/tmp", "/home", "/var/tmp", *binds])
    return f"""#!/bin/sh
# hpcbridge testbed: Slurm 26.05 `{exe}` from the Debian sid rootfs, run through bwrap.
# Generated by tests/testbed/sid.py; do not edit.
[ ! -e {MARKER} ] || exec /usr/bin/{exe} "$@"
case "$PWD" in {seen}) here=$PWD ;; *) here=/ ;; esac  # what the sandbox shows of the host
exec bwrap --bind {q(str(rootfs))} / --proc /proc --dev-bind /dev /dev --ro-bind /sys /sys \\
  --bind /tmp /tmp --bind /home /home --bind /var/tmp /var/tmp \\
  --ro-bind /etc/passwd /etc/passwd --ro-bind /etc/group /etc/group \\
  --ro-bind /etc/hosts /etc/hosts {bind_args} \\
  --chdir "$here" -- /usr/bin/{exe} "$@"
"""


def daemon_argv(layout: C.Layout, hostname: Optional[str], argv: list[str]) -> list[str]:
    """``argv`` (a sid binary) started in the sandbox; the PID stays the daemon's."""
    return [
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        str(layout.sandbox),
        hostname or "-",
        *argv,
    ]


def is_sid(layout: C.Layout) -> bool:
    """Whether ``layout`` is a 26.05 testbed (its sandbox has been written)."""
    return layout.sandbox.is_file()


def prepare_cgroups(layout: C.Layout) -> tuple[bool, str]:
    """Make this testbed's cgroup-v1 directories; (usable?, what enforces memory limits)."""
    name = cgroup_name(layout)
    for ctl in CGROUP_CONTROLLERS:
        base = CGROUP_ROOT / ctl
        if not (base / "cgroup.procs").is_file() or (CGROUP_ROOT / "cgroup.controllers").exists():
            return False, f"no cgroup-v1 {ctl} hierarchy at {base}"
        try:
            (base / name).mkdir(exist_ok=True)
            if ctl == "cpuset":  # a new cpuset has no CPUs or memory nodes: no task may join
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (base / name / knob).read_text().strip():
                        (base / name / knob).write_text((base / knob).read_text())
        except OSError as exc:
            return False, f"cannot set up {base / name}: {exc}"
    return True, f"cgroup/v1 under {CGROUP_ROOT}/{{{','.join(CGROUP_CONTROLLERS)}}}/{name}"


def remove_cgroups(layout: C.Layout) -> list[str]:
    """Remove this testbed's (empty) cgroup directories, deepest first; returns what stays."""
    left: list[str] = []
    for ctl in CGROUP_CONTROLLERS:
        top = CGROUP_ROOT / ctl / cgroup_name(layout)
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left


def ensure_sid(
    cache_dir: Path,
    layout: C.Layout,
    user: tuple[int, int],
    extra_binds: list[Path],
    want_cgroups: bool,
    running: bool = False,
) -> dict[str, Any]:
    """The 26.05 rootfs (built once), the sandbox script and the client wrappers.

    ``user`` is the test user's (uid, gid): the Apptainer wrapper called as root runs as
    them.  The result's ``cgroups_usable`` says whether cgroup v1 could be set up when
    ``want_cgroups``; ``enforcement`` what will kill an over-memory task.  ``running``: the
    testbed's daemons are up (its rootfs is then never replaced).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    rootfs = A.ensure_rootfs(cache_dir, SLURM_ROOTFS, in_use=running)
    marker = rootfs / MARKER.lstrip("/")
    if not marker.exists():
        marker.write_text("the hpcbridge testbed's Slurm 26.05 rootfs (tests/testbed/sid.py)\n")
    (rootfs / ".oldroot").mkdir(exist_ok=True)
    fuse = Path("/dev/fuse")
    if fuse.exists() and fuse.stat().st_mode & 0o777 != 0o666:
        os.chmod(fuse, 0o666)  # unprivileged squashfuse needs it
    binds = A.bind_list(rootfs, [layout.root, cache_dir, *extra_binds])
    layout.sid_bin.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.sid, 0o755)
    os.chmod(layout.sid_bin, 0o755)
    usable, why = prepare_cgroups(layout) if want_cgroups else (False, "cgroups knob off")
    python = host_python()
    _python_placeholders(rootfs, *python)
    enforcement = (
        "task/cgroup ConstrainRAMSpace: the kernel OOM-kills in the step's memory cgroup, "
        "Slurm reports OUT_OF_MEMORY"
        if usable
        else f"jobacct_gather/linux OverMemoryKill (no cgroups: {why})"
    )
    A.write_executable(
        layout.sandbox,
        sandbox_script(rootfs, [*binds, *python], cgroup_name(layout) if usable else None),
    )
    layout.sid_slurm_bin.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.sid_slurm_bin, 0o755)
    for exe in CLIENTS:
        if (rootfs / "usr/bin" / exe).exists():
            A.write_executable(layout.sid_bin / exe, client_wrapper(rootfs, binds, exe))
            link = layout.sid_slurm_bin / exe  # a "login node" PATH: clients, no runtime
            if not link.is_symlink():
                link.symlink_to(Path("..") / "bin" / exe)
    for exe in A.BIN_NAMES:
        text = A.wrapper_script(rootfs, binds, user[0], user[1], exe, inside=MARKER)
        A.write_executable(layout.sid_bin / exe, text)
    versions = A.installed_versions(rootfs, SID_PACKAGES)
    # what the 22.05 side's ensure_apptainer records: teardown finds the test user's stray
    # squashfuse_ll / starter processes by this uid
    info = {"rootfs": str(rootfs), "bin_dir": str(layout.sid_bin), "uid": user[0]}
    info["versions"] = A.installed_versions(rootfs)
    (layout.root / "apptainer.json").write_text(json.dumps(info, sort_keys=True) + "\n")
    if not versions.get("slurmctld", "").startswith("26.05."):
        raise RuntimeError(
            f"{rootfs} has Slurm {versions.get('slurmctld')}, not 26.05 (Debian sid moved on): "
            "set HPCBRIDGE_TESTBED_SID_MIRROR to a snapshot.debian.org URL of a day sid had "
            f"26.05, remove {rootfs} and its .stamp, and run up again"
        )
    return {
        "rootfs": str(rootfs),
        "bin_dir": str(layout.sid_bin),
        "slurm_bin": str(layout.sid_slurm_bin),
        "sandbox": str(layout.sandbox),
        "versions": versions,
        "cgroups_usable": usable,
        "cgroups": why,
        "enforcement": enforcement,
    }
