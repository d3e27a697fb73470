"""Run a command and watch it: wall time, peak RSS of the process and of its process tree, disk peak.

* process peak: ``VmHWM`` of the command's own process (the kernel's exact high-water
  mark), read from ``/proc/<pid>/status`` every ``interval`` seconds; the last reading
  before the process exits is kept (``setpriv``/``env`` exec, so the PID is the command's);
* tree peak: the largest sum of ``VmRSS`` over the process and all its descendants seen
  at one sampling instant (sampled, so a spike shorter than ``interval`` can be missed);
  also the largest single ``VmHWM`` of a descendant (e.g. mksquashfs);
* disk peak: the largest value ``disk()`` returned (sampled every ``disk_interval`` seconds;
  bench/convert.py gives the used bytes of a filesystem that holds only the run's files).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional


@dataclass(frozen=True)
class Watched:
    seconds: float
    returncode: int
    process_peak: int  # bytes
    tree_peak: int  # bytes
    child_peak: int  # bytes: the largest VmHWM among descendants
    disk_peak: int  # bytes
    stderr: str


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (``/proc/PID/task/TID/children``)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def watch(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    disk: Optional[Callable[[], int]] = None,
    interval: float = 0.02,
    disk_interval: float = 0.1,
    timeout: float = 3600,
) -> Watched:
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    err: list[bytes] = []
    ended: list[float] = []

    def wait() -> None:  # the end time, to the millisecond (the sampling loop sleeps)
        err.append(proc.stderr.read() if proc.stderr else b"")
        proc.wait()
        ended.append(time.perf_counter())

    reader = threading.Thread(target=wait)
    reader.start()
    hwm = tree = child = peak_disk = 0
    next_disk = 0.0
    while not ended:
        now = time.perf_counter()
        if now - start > timeout:
            proc.kill()
            break
        pids = _tree(proc.pid)
        total = 0
        for pid in pids:
            st = _status(pid)
            total += st.get("VmRSS", 0)
            if pid == proc.pid:
                hwm = max(hwm, st.get("VmHWM", 0))
            else:
                child = max(child, st.get("VmHWM", 0))
        tree = max(tree, total)
        if disk is not None and now >= next_disk:
            peak_disk = max(peak_disk, disk())
            next_disk = now + disk_interval
        reader.join(timeout=interval)
    reader.join()
    code = proc.wait()
    seconds = ended[0] - start
    if disk is not None:
        peak_disk = max(peak_disk, disk())
    return Watched(
        seconds, code, hwm, tree, child, peak_disk, b"".join(err).decode(errors="replace")
    )
