"""Processes of the testbed: start daemons detached, record them by PID, stop them by PID.

Every daemon is started in the foreground (``-D`` / ``--foreground``) through
``setsid`` so that the PID we get back is the daemon's own PID and killing the
caller's process group (Ctrl-C in pytest) does not take it down.  The PID goes to
``<state>/pids/<name>.pid`` together with the process start time, so a recycled PID
is never mistaken for ours.  Nothing here ever looks a process up by name to stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hpcbridge import runner

# Processes that must not outlive the testbed (``leftovers`` looks for these).
DAEMON_NAMES = (
    "slurmctld",
    "slurmd",
    "slurmstepd",
    "munged",
    "slurmdbd",
    "mariadbd",
    "mysqld",
    "docker-registry",
    "registry",
    "squashfuse",
    "squashfuse_ll",
    "bwrap",  # a wrapped Apptainer or 26.05 client still running (its env names the state dir)
)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    comm: str
    state: str  # one letter from /proc/<pid>/stat: R S D Z T ...
    uid: int
    starttime: int  # clock ticks since boot (field 22 of /proc/<pid>/stat)
    cmdline: tuple[str, ...]


def proc_info(pid: int) -> Optional[ProcInfo]:
    """What /proc says about ``pid``, or None when there is no such process."""
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
        raw_cmd = (base / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lpar, rpar = stat.index("("), stat.rindex(")")
    comm = stat[lpar + 1 : rpar]
    fields = stat[rpar + 2 :].split()
    uid = 0
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    cmd = tuple(a.decode(errors="replace") for a in raw_cmd.split(b"\0") if a)
    return ProcInfo(pid, comm, fields[0], uid, int(fields[19]), cmd)


def is_alive(pid: int, starttime: Optional[int] = None) -> bool:
    """True while ``pid`` runs (zombies and dead processes count as gone).

    With ``starttime`` the process must also be the one recorded (no PID reuse).
    """
    info = proc_info(pid)
    if info is None or info.state in ("Z", "X", "x"):
        return False
    return starttime is None or info.starttime == starttime


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so it does not stay a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def names_path(text: str, path: str) -> bool:
    """Whether ``text`` names ``path`` or something under it (not ``path-other``)."""
    return re.search(re.escape(path) + r"(?=[/\s:\x00]|$)", text) is not None


def mentions_path(pid: int, marker: str) -> bool:
    """Whether ``pid``'s cwd or an open file lies under ``marker`` (e.g. slurmstepd's slurmd log)."""
    base = Path("/proc") / str(pid)
    links = [base / "cwd"]
    with contextlib.suppress(OSError):
        links += list((base / "fd").iterdir())
    for link in links:
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if target == marker or target.startswith(marker + "/"):
            return True
    return False


def environ_of(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


class PidRegistry:
    """``<state>/pids/<name>.pid``: one JSON record per daemon the testbed started."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "pids"

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def record(self, name: str, pid: int, argv: Sequence[str] = ()) -> None:
        info = proc_info(pid)
        data = {
            "name": name,
            "pid": pid,
            "starttime": info.starttime if info else None,
            "argv": list(argv),
            "started": time.time(),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(self.path(name))

    def get(self, name: str) -> Optional[dict[str, object]]:
        try:
            data: dict[str, object] = json.loads(self.path(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.pid"))

    def alive(self, name: str) -> Optional[int]:
        """The PID of daemon ``name`` if it is still the process we started and running."""
        data = self.get(name)
        if not data:
            return None
        pid = int(str(data["pid"]))
        start = data.get("starttime")
        if is_alive(pid, int(str(start)) if start is not None else None):
            return pid
        return None

    def forget(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def stop(self, name: str, timeout: float = 10.0) -> bool:
        """Stop daemon ``name`` (TERM, wait, KILL) and forget it; True if it was running."""
        pid = self.alive(name)
        if pid is not None:
            stop_pids([pid], timeout=timeout)
        self.forget(name)
        return pid is not None


def stop_pids(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """TERM every pid, wait up to ``timeout`` for all, KILL the rest; returns the killed ones."""
    todo: dict[int, ProcInfo] = {}
    for pid in pids:
        info = proc_info(pid)
        if info is not None and info.state not in ("Z", "X"):
            todo[pid] = info
    for pid in todo:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        for pid in todo:
            _reap(pid)
        living = [p for p, i in todo.items() if is_alive(p, i.starttime)]
        if not living:
            return killed
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in living:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 5
    while time.monotonic() < end:
        for pid in living:
            _reap(pid)
        if not any(is_alive(p, todo[p].starttime) for p in living):
            break
        time.sleep(0.05)
    return killed


def start_daemon(
    registry: PidRegistry,
    name: str,
    argv: Sequence[str],
    log_file: Path,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
) -> int:
    """Start ``argv`` (which must stay in the foreground) detached and record its PID.

    ``setsid`` gives it its own session; ``sh -c 'exec "$@"'`` sends stdout and
    stderr to ``log_file``; both exec, so the PID we get is the daemon's.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if cwd is None:
        cwd = registry.dir.parent  # the state dir: daemons hold no other directory open
    wrapped = ["setsid", "sh", "-c", 'exec "$@" >>"$0" 2>&1', str(log_file), *argv]
    proc = runner.spawn(wrapped, env=env, cwd=cwd, stderr_pipe=False)
    registry.record(name, proc.pid, argv)
    return proc.pid


def wait_for(what: str, predicate: object, timeout: float, pid: Optional[int] = None) -> None:
    """Poll ``predicate()`` until true; fail early if daemon ``pid`` died."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if predicate():
            return
        if pid is not None and not is_alive(pid):
            _reap(pid)
            raise RuntimeError(f"{what}: the process {pid} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def testbed_processes(state_dir: Path, test_uid: Optional[int]) -> list[ProcInfo]:
    """Running daemon-like processes that belong to this testbed.

    A process belongs to it when its command line, environment, working directory or
    an open file names the state directory (slurmstepd keeps slurmd's log open), or
    when it runs as the test user (squashfuse_ll, whose environment is scrubbed).
    """
    marker = str(state_dir)
    found: list[ProcInfo] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        info = proc_info(int(entry.name))
        if info is None or info.state in ("Z", "X"):
            continue
        exe = Path(info.cmdline[0]).name if info.cmdline else ""
        names = {info.comm, exe}
        if info.comm.startswith("slurmstepd") or exe.startswith("slurmstepd"):
            names.add("slurmstepd")
        if not names & set(DAEMON_NAMES):
            continue
        ours = (
            names_path(" ".join(info.cmdline), marker)
            or names_path(environ_of(info.pid), marker)
            or mentions_path(info.pid, marker)
        )
        if not ours and test_uid is not None and info.uid == test_uid:
            ours = True
        if ours:
            found.append(info)
    return found
