"""The real Apptainer 1.4.5 for the testbed, run rootless from a Debian sid root filesystem.

Debian bookworm has no Apptainer package; sid has 1.4.5. ``ensure_apptainer`` debootstraps
a sid rootfs with ``apptainer``, ``squashfuse`` and ``fuse3`` into the testbed cache (once;
a stamp file records the package list) and writes a small wrapper script that runs
``<rootfs>/usr/bin/apptainer`` inside ``bwrap`` with the host's /tmp, /home, /var/tmp,
passwd/group, the testbed's state and cache dirs (and any extra binds) visible, keeping the
caller's working directory and environment. Apptainer then runs unprivileged: user
namespace + squashfuse for SIF files, exactly as on a cluster without setuid Apptainer.

Called as root (root here lacks CAP_SYS_RESOURCE, which Apptainer's root mode needs), the
wrapper drops to the test user inside a new user namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

SUITE = "sid"  # the mirror: $HPCBRIDGE_TESTBED_SID_MIRROR (e.g. a snapshot.debian.org URL)
# or the Debian mirror of the host's apt sources
# fuse2fs and gocryptfs only silence Apptainer's "not found" INFO lines on every command;
# fuse-overlayfs makes a writable ext3 overlay work rootless (the kernel refuses a FUSE upper)
PACKAGES = ("apptainer", "squashfuse", "fuse3", "fuse2fs", "gocryptfs", "fuse-overlayfs")
ROOTFS_NAME = "apptainer-rootfs"
STAMP_NAME = "apptainer-rootfs.stamp"
PROBE_DIR = Path("/var/cache/hpcbridge-testbed/sid-probe")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
BIN_NAMES = ("apptainer", "singularity")
# host directories the wrapper always shows (paths under them need no bind of their own)
ALWAYS_BOUND = ("/tmp", "/home", "/var/tmp")


def debian_mirror(sources_dir: Path = APT_SOURCES_DIR) -> str:
    """The Debian archive mirror the host's apt uses (not the security archive)."""
    candidates: list[str] = []
    paths = sorted(sources_dir.glob("*.sources")) + sorted(sources_dir.glob("*.list"))
    paths.append(Path("/etc/apt/sources.list"))
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                candidates.extend(line.split()[1:])
            elif line.startswith("deb "):
                parts = [p for p in line.split() if not p.startswith("[")]
                if len(parts) >= 2:
                    candidates.append(parts[1])
    for uri in candidates:
        if re.search(r"/debian/?$", uri) and "security" not in uri:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


class _Lock:
    """An exclusive flock on a file, so two `up` calls never build the same thing at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


@dataclass(frozen=True)
class RootfsSpec:
    """A Debian sid root filesystem in the testbed cache, built once by debootstrap."""

    name: str  # directory under the cache; ``<name>.stamp`` records what it was built with
    packages: tuple[str, ...]
    proof: tuple[str, ...]  # files that exist once it is complete

    def stamp_text(self) -> str:
        return (
            json.dumps({"suite": SUITE, "variant": "minbase", "packages": sorted(self.packages)})
            + "\n"
        )


APPTAINER_ROOTFS = RootfsSpec(ROOTFS_NAME, PACKAGES, ("usr/bin/apptainer", "usr/bin/squashfuse_ll"))


def _stamp_text() -> str:
    return APPTAINER_ROOTFS.stamp_text()


def _rootfs_complete(rootfs: Path, spec: RootfsSpec = APPTAINER_ROOTFS) -> bool:
    return all((rootfs / p).exists() for p in spec.proof)


def _finish_rootfs(rootfs: Path) -> None:
    """Small fix-ups Apptainer needs that debootstrap does not do."""
    hosts = rootfs / "etc/hosts"
    if not hosts.exists():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    for sub in ("var/tmp", "tmp", "home"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)


def ensure_rootfs(
    cache_dir: Path, spec: RootfsSpec = APPTAINER_ROOTFS, in_use: bool = False
) -> Path:
    """The rootfs of ``spec``, built once (the Apptainer one reuses the probe copy if present).

    ``in_use``: daemons run from it, so an existing rootfs is never replaced (deleting the
    directories their sandbox mounts on unmounts those mounts in every namespace)."""
    rootfs = cache_dir / spec.name
    stamp = cache_dir / f"{spec.name}.stamp"
    want = spec.stamp_text()
    if stamp.is_file() and stamp.read_text() == want and _rootfs_complete(rootfs, spec):
        _finish_rootfs(rootfs)
        return rootfs
    with _Lock(cache_dir / f"{spec.name}.lock"):
        if stamp.is_file() and stamp.read_text() == want and _rootfs_complete(rootfs, spec):
            _finish_rootfs(rootfs)
            return rootfs
        stamp.unlink(missing_ok=True)
        if _rootfs_complete(rootfs, spec) and _has_packages(rootfs, spec):
            pass  # only the stamp was missing or older
        elif (
            spec == APPTAINER_ROOTFS
            and not rootfs.exists()
            and PROBE_DIR.is_dir()
            and _rootfs_complete(PROBE_DIR)
            and (_has_packages(PROBE_DIR))
        ):
            if PROBE_DIR.parent == cache_dir:
                PROBE_DIR.rename(rootfs)
            else:
                shutil.copytree(PROBE_DIR, rootfs, symlinks=True)
        else:
            if in_use and rootfs.exists():
                raise RuntimeError(
                    f"{rootfs} must be rebuilt (its package list changed), but this testbed's "
                    "daemons run from it: bring the testbed down first, then up"
                )
            tmp = _debootstrap(cache_dir, spec)
            if rootfs.exists():
                shutil.rmtree(rootfs)
            tmp.rename(rootfs)
        _finish_rootfs(rootfs)
        if not _rootfs_complete(rootfs, spec):
            raise RuntimeError(f"{rootfs} lacks one of {', '.join(spec.proof)}")
        stamp.write_text(want)
    return rootfs


def _debootstrap(cache_dir: Path, spec: RootfsSpec = APPTAINER_ROOTFS) -> Path:
    tmp = cache_dir / f"{spec.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    argv = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(spec.packages),
        SUITE,
        str(tmp),
        os.environ.get("HPCBRIDGE_TESTBED_SID_MIRROR") or debian_mirror(),
    ]
    log = cache_dir / f"{spec.name}.debootstrap.log"
    with open(log, "wb") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"debootstrap of {spec.name} failed (exit {proc.returncode}); "
            f"see {log} (command: {shlex.join(argv)})"
        )
    # keep the rootfs small: downloaded .debs are not needed
    for deb in (tmp / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    return tmp


def installed_versions(rootfs: Path, packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Versions of ``packages`` installed in the rootfs (from its dpkg status file)."""
    wanted = set(packages)
    try:
        status = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for para in status.split("\n\n"):
        name = re.search(r"^Package: (\S+)$", para, re.M)
        version = re.search(r"^Version: (\S+)$", para, re.M)
        if name and version and name.group(1) in wanted and "install ok installed" in para:
            out[name.group(1)] = version.group(1)
    return out


def _has_packages(rootfs: Path, spec: RootfsSpec = APPTAINER_ROOTFS) -> bool:
    return set(spec.packages) <= set(installed_versions(rootfs, spec.packages))


def _user_gid(uid: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def wrapper_script(
    rootfs: Path,
    binds: Iterable[Path],
    user_uid: int,
    user_gid: int,
    exe: str = "apptainer",
    inside: str = "",
) -> str:
    """The text of the `apptainer` wrapper (POSIX sh).

    With ``inside`` (a file only the rootfs has), a caller already running in that rootfs
    (a job on the 26.05 cluster) runs /usr/bin/``exe`` directly.
    """
    q = shlex.quote
    bind_args = " ".join(f"--bind {q(str(b))} {q(str(b))}" for b in binds)
    direct = f'[ ! -e {q(inside)} ] || exec /usr/bin/{exe} "$@"\n' if inside else ""
    return f"""#!/bin/sh
# hpcbridge testbed: the real Apptainer from a Debian sid rootfs, run through bwrap.
# Generated by tests/testbed/{"sid" if inside else "apptainer"}.py; do not edit.
set -e
{direct}ROOTFS={q(str(rootfs))}
if [ "$(id -u)" = 0 ]; then
  # root here lacks CAP_SYS_RESOURCE: run as the test user in a user namespace
  set -- --unshare-user --uid {user_uid} --gid {user_gid} -- /usr/bin/{exe} "$@"
else
  set -- -- /usr/bin/{exe} "$@"
fi
exec bwrap --bind "$ROOTFS" / --proc /proc --dev-bind /dev /dev --ro-bind /sys /sys \\
  --bind /tmp /tmp --bind /home /home --bind /var/tmp /var/tmp \\
  --ro-bind /etc/passwd /etc/passwd --ro-bind /etc/group /etc/group \\
  {bind_args} \\
  --chdir "$PWD" "$@"
"""


def bind_list(rootfs: Path, dirs: Iterable[Path]) -> list[Path]:
    """``dirs`` a wrapper must bind besides ALWAYS_BOUND, with mount points made in ``rootfs``."""
    binds: list[Path] = []
    for b in map(Path, dirs):
        covered = any(b == Path(d) or Path(d) in b.parents for d in ALWAYS_BOUND)
        if b.is_absolute() and str(b) != "/" and not covered and b not in binds:
            binds.append(b)
    for b in binds:
        # bwrap cannot create mount points inside the root-owned rootfs as the test user
        point = rootfs / str(b).lstrip("/")
        if b.is_dir() or not b.exists():
            point.mkdir(parents=True, exist_ok=True)
        elif not point.exists():
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()
    return binds


def write_executable(target: Path, text: str) -> None:
    """Replace ``target`` atomically with an executable script, unless it already is ``text``."""
    if not target.is_file() or target.read_text() != text:
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)


def ensure_apptainer(
    cache_dir: Path, state_dir: Path, user_uid: int, extra_binds: list[Path]
) -> Path:
    """Build (once) the sid rootfs and write the wrappers; return the bin dir holding
    executables `apptainer` and `singularity`."""
    cache_dir = Path(cache_dir)
    state_dir = Path(state_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rootfs = ensure_rootfs(cache_dir)
    fuse = Path("/dev/fuse")
    if os.geteuid() == 0 and fuse.exists() and fuse.stat().st_mode & 0o777 != 0o666:
        os.chmod(fuse, 0o666)  # unprivileged squashfuse needs it
    bin_dir = state_dir / "apptainer-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(bin_dir, 0o755)
    binds = bind_list(rootfs, [state_dir, cache_dir, *extra_binds])
    for name in BIN_NAMES:
        write_executable(
            bin_dir / name, wrapper_script(rootfs, binds, user_uid, _user_gid(user_uid), name)
        )
    info = {
        "rootfs": str(rootfs),
        "bin_dir": str(bin_dir),
        "uid": user_uid,
        "versions": installed_versions(rootfs),
    }
    (state_dir / "apptainer.json").write_text(json.dumps(info, sort_keys=True) + "\n")
    return bin_dir


# ---------------------------------------------------------------------------------------
# squashfuse_ll processes that outlive killed steps


def _proc_entries() -> Iterator[tuple[int, str, int, str]]:
    """(pid, comm, real uid, first word of cmdline) of every process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        m = re.search(r"^Uid:\s+(\d+)", status, re.M)
        state = re.search(r"^State:\s+(\S)", status, re.M)
        if m and not (state and state.group(1) in "ZX"):
            yield pid, comm, int(m.group(1)), cmd


def _testbed_uids(state_dir: Path, uids: Iterable[int] | None) -> set[int]:
    if uids is None:
        try:
            info = json.loads((Path(state_dir) / "apptainer.json").read_text())
        except (OSError, ValueError):
            return set()
        wanted = {int(info["uid"])}
    else:
        wanted = set(uids)
    wanted.discard(0)
    return wanted


def stray_squashfuse(state_dir: Path, uids: Iterable[int] | None = None) -> list[int]:
    """PIDs of `squashfuse_ll` processes owned by the testbed's users.

    `uids` defaults to the test user recorded by `ensure_apptainer` in state_dir. Only
    processes whose real uid is one of them are returned (never other users' mounts)."""
    wanted = _testbed_uids(state_dir, uids)
    return sorted(
        pid
        for pid, comm, uid, _ in _proc_entries()
        if comm.startswith("squashfuse") and uid in wanted
    )


def stray_starters(state_dir: Path, uids: Iterable[int] | None = None) -> list[int]:
    """PIDs of Apptainer `starter` processes ("Apptainer runtime parent") of the testbed's
    users. They outlive a killed wrapper (bwrap) together with the container process and
    its squashfuse_ll; a TERM to the starter ends all three."""
    wanted = _testbed_uids(state_dir, uids)
    return sorted(
        pid
        for pid, comm, uid, cmd in _proc_entries()
        if uid in wanted and (comm.startswith("starter") or cmd.startswith("Apptainer runtime"))
    )


def stop_pids(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """TERM the pids, wait up to `timeout` for them to go, KILL the rest; return them."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def stop_stray_squashfuse(
    state_dir: Path, uids: Iterable[int] | None = None, timeout: float = 5.0
) -> list[int]:
    """Stop ALL the testbed users' Apptainer processes by PID (teardown only): TERM the
    starters first (they take their container process and squashfuse_ll with them),
    then any squashfuse_ll left; KILL what still runs after `timeout`."""
    stopped = stop_pids(stray_starters(state_dir, uids), timeout)
    return stopped + stop_pids(stray_squashfuse(state_dir, uids), timeout)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
