"""The per-task outcome files the job script writes (pure shell, no Python per task).

Contract (written by the rendered script, each via a temp name + ``mv``):

* ``<T>.start``: ``<epoch> <SLURM_JOB_ID> <SLURM_ARRAY_JOB_ID|-> <hostname>``
* ``<T>.end``:   ``<epoch> <exit_code> <how>`` with ``how`` = ``exit`` or ``signal:<NAME>``,
  then optionally ``mem_peak=<bytes>`` and ``cpu_usec=<microseconds>``: the job's own
  cgroup's peak memory and CPU time, when the script could read them (hpcbridge report),
  then optionally ``reason=<text to the end of the line>``: why a run-time check
  failed the task (a missing node-local bind source...), written last

where ``T`` is the task's GLOBAL index.  They tell outcomes without slurmdbd and
after squeue has forgotten the job (MinJobAge).  Parsing is pure; only
:func:`read_outcomes` touches the file system.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one task recorded about itself."""

    task: int
    started: Optional[float] = None
    job_id: Optional[str] = None  # SLURM_JOB_ID of the task
    array_job_id: Optional[str] = None
    host: Optional[str] = None
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    how: Optional[str] = None  # "exit" | "signal:TERM" ...
    mem_peak: Optional[int] = None  # bytes, the job's cgroup peak (mem_peak=)
    cpu_time: Optional[float] = None  # seconds, the job's cgroup CPU time (cpu_usec=)
    reason: Optional[str] = None  # why a run-time check failed the task (reason=)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    @property
    def signal_name(self) -> Optional[str]:
        if self.how and self.how.startswith("signal:"):
            return self.how.split(":", 1)[1]
        return None

    @property
    def elapsed(self) -> Optional[float]:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


def parse_start(task: int, text: str) -> Optional[Outcome]:
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        started = float(parts[0])
    except ValueError:
        return None
    array_id = parts[2] if len(parts) > 2 and parts[2] != "-" else None
    return Outcome(
        task=task,
        started=started,
        job_id=parts[1],
        array_job_id=array_id,
        host=parts[3] if len(parts) > 3 else None,
    )


def parse_end(text: str) -> Optional[tuple[float, int, str]]:
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        return float(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else "exit"
    except ValueError:
        return None


def parse_usage(text: str) -> tuple[Optional[int], Optional[float]]:
    """The optional ``mem_peak=<bytes> cpu_usec=<us>`` fields of an end file (before any
    ``reason=``, whose free text could hold anything)."""
    head = text.splitlines()[0].partition(" reason=")[0] if text else ""
    fields = dict(p.split("=", 1) for p in head.split()[3:] if "=" in p)
    mem, cpu = fields.get("mem_peak", ""), fields.get("cpu_usec", "")
    return (int(mem) if mem.isdigit() else None), (int(cpu) / 1e6 if cpu.isdigit() else None)


def parse_reason(text: str) -> Optional[str]:
    """The optional ``reason=<text>`` of an end file (the rest of its first line)."""
    line = text.splitlines()[0] if text else ""
    _, sep, reason = line.partition(" reason=")
    return (reason.strip() or None) if sep else None


def combine(task: int, start_text: Optional[str], end_text: Optional[str]) -> Optional[Outcome]:
    """One task's Outcome from the texts of its files (either may be missing or malformed)."""
    start = parse_start(task, start_text) if start_text is not None else None
    end = parse_end(end_text) if end_text is not None else None
    if start is None and end is None:
        return None
    base = start or Outcome(task=task)
    if end is None:
        return base
    ended, code, how = end
    mem_peak, cpu_time = parse_usage(end_text or "")
    return Outcome(
        task=task,
        started=base.started,
        job_id=base.job_id,
        array_job_id=base.array_job_id,
        host=base.host,
        ended=ended,
        exit_code=code,
        how=how,
        mem_peak=mem_peak,
        cpu_time=cpu_time,
        reason=parse_reason(end_text or ""),
    )


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(512)
    except OSError:
        return None


def read_outcomes(
    directory: Path, *, skip: Container[int] = (), only: Optional[Iterable[int]] = None
) -> dict[int, Outcome]:
    """Outcomes in ``directory`` by global task index (one directory listing).

    ``skip``: tasks already known to be finished (their files are not read again).
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    starts: set[int] = set()
    ends: set[int] = set()
    for name in names:
        stem, dot, ext = name.partition(".")
        if not dot or not stem.isdigit():
            continue
        if ext == "start":
            starts.add(int(stem))
        elif ext == "end":
            ends.add(int(stem))
    wanted = starts | ends
    if only is not None:
        wanted &= set(only)
    base = os.fspath(directory)
    out: dict[int, Outcome] = {}
    for task in wanted:
        if task in skip:
            continue
        start_text = _read(f"{base}/{task}.start") if task in starts else None
        end_text = _read(f"{base}/{task}.end") if task in ends else None
        outcome = combine(task, start_text, end_text)
        if outcome is None:
            log.warning("skipped malformed outcome files of task %d in %s", task, directory)
            continue
        out[task] = outcome
    return out
