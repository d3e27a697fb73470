"""One run of one task: what it asked for and what it used (pure).

An :class:`Attempt` merges what hpcbridge knows about one task of one
submission: its state (the tracker's), its outcome files (start, end, node and,
where the job script could read its cgroup, peak memory and CPU time) and, with
accounting, sacct's figures.  A figure nobody measured is None: it is reported
as unknown, never estimated.

Which source wins, per figure:

* peak memory: sacct's MaxRSS (largest over the steps), else the cgroup's peak
  the job script wrote into ``<T>.end`` (``memory.peak`` on cgroup v2,
  ``memory.max_usage_in_bytes`` on v1: that one counts page cache too);
* CPU time: sacct's TotalCPU, else the cgroup's CPU usage from ``<T>.end``;
* start, end, elapsed: the outcome files (the task's own clock), else sacct;
* node: the outcome file's host, else sacct's NodeList;
* requested memory, time, CPUs: sacct's ReqMem/AllocCPUS, else the record
  (the chunk's ``--mem`` and time limit, the job file's CPUs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from hpcbridge.scheduler.states import JobState
from hpcbridge.tracking.outcomes import Outcome
from hpcbridge.tracking.summary import TaskStatus

MIB = 1024 * 1024


class Figures(Protocol):
    """What a report reads of one task's sacct line
    (:class:`hpcbridge.scheduler.base.TaskAccounting`)."""

    @property
    def job_id(self) -> str: ...
    @property
    def exit_code(self) -> Optional[int]: ...
    @property
    def elapsed_s(self) -> Optional[int]: ...
    @property
    def total_cpu_s(self) -> Optional[float]: ...
    @property
    def max_rss_bytes(self) -> Optional[int]: ...
    @property
    def req_mem_bytes(self) -> Optional[int]: ...
    @property
    def alloc_cpus(self) -> Optional[int]: ...
    @property
    def node_list(self) -> str: ...
    @property
    def start(self) -> Optional[str]: ...
    @property
    def end(self) -> Optional[str]: ...


@dataclass(frozen=True)
class Requested:
    """What the task's chunk asked Slurm for (None: nothing asked, Slurm's default)."""

    mem: Optional[int] = None  # bytes
    time: Optional[int] = None  # seconds
    cpus: Optional[int] = None


@dataclass(frozen=True)
class Attempt:
    """One run of one task (sizes in bytes, times in seconds, epochs for start/end)."""

    task: int
    submission: str
    attempt: int  # 1: the original submission, 2: its first resubmission, ...
    job_id: str
    state: JobState
    reason: str = ""
    exit_code: Optional[int] = None
    node: Optional[str] = None
    start: Optional[float] = None
    end: Optional[float] = None
    elapsed: Optional[float] = None
    cpu_time: Optional[float] = None
    peak_mem: Optional[int] = None
    peak_source: Optional[str] = None  # "sacct" | "cgroup"
    cpu_source: Optional[str] = None  # "sacct" | "cgroup"
    req_mem: Optional[int] = None
    req_time: Optional[int] = None
    cpus: Optional[int] = None

    @property
    def finished(self) -> bool:
        return self.state.terminal

    @property
    def completed(self) -> bool:
        return self.state is JobState.COMPLETED

    @property
    def core_seconds(self) -> Optional[float]:
        """Elapsed x CPUs: what the allocation held (None when either is unknown)."""
        if self.elapsed is None or self.cpus is None:
            return None
        return self.elapsed * self.cpus

    @property
    def cpu_efficiency(self) -> Optional[float]:
        """CPU time / (elapsed x CPUs)."""
        held = self.core_seconds
        if self.cpu_time is None or not held:
            return None
        return self.cpu_time / held

    @property
    def above_request(self) -> bool:
        """The measured peak is clearly above the request: the memory limit was enforced by
        sampling (jobacct_gather's OverMemoryKill), which saw the task get that far.  A memory
        cgroup instead stops a task at its limit, so a peak at or under the request says
        only that the task needed more."""
        if self.peak_mem is None or self.req_mem is None:
            return False
        return self.peak_mem > self.req_mem * ABOVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "submission": self.submission,
            "attempt": self.attempt,
            "job_id": self.job_id,
            "state": self.state.value,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "node": self.node,
            "start": self.start,
            "end": self.end,
            "elapsed_s": self.elapsed,
            "cpu_time_s": self.cpu_time,
            "cpu_efficiency": self.cpu_efficiency,
            "peak_mem_bytes": self.peak_mem,
            "peak_mem_source": self.peak_source,
            "cpu_time_source": self.cpu_source,
            "req_mem_bytes": self.req_mem,
            "req_time_s": self.req_time,
            "cpus": self.cpus,
        }


# A peak more than 3 % above the request is a measurement beyond the limit (sacct's
# MaxRSS of a task the kernel stopped at --mem=100M is 102220K, 99.8 %: at the limit).
ABOVE = 1.03


def sacct_epoch(text: Optional[str]) -> Optional[float]:
    """sacct's local ``YYYY-MM-DDTHH:MM:SS`` as an epoch (None when absent or odd)."""
    if not text:
        return None
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _source(sacct: Optional[float], cgroup: Optional[float]) -> Optional[str]:
    if sacct is not None:
        return "sacct"
    return "cgroup" if cgroup is not None else None


def _node(outcome: Optional[Outcome], acct: Optional[Figures]) -> Optional[str]:
    if outcome is not None and outcome.host:
        return outcome.host.split(".")[0]
    if acct is not None and acct.node_list:
        return acct.node_list
    return None


def make_attempt(
    status: TaskStatus,
    *,
    submission: str,
    attempt: int,
    requested: Requested,
    outcome: Optional[Outcome] = None,
    acct: Optional[Figures] = None,
) -> Attempt:
    """Merge the tracker's status, the outcome files and sacct's line of one task."""
    start = _first(outcome.started if outcome else None, sacct_epoch(acct.start if acct else None))
    end = _first(outcome.ended if outcome else None, sacct_epoch(acct.end if acct else None))
    elapsed: Optional[float] = None
    if outcome is not None and outcome.elapsed is not None:
        elapsed = max(0.0, outcome.elapsed)
    elif acct is not None and acct.elapsed_s is not None and status.state.terminal:
        elapsed = float(acct.elapsed_s)
    acct_rss = acct.max_rss_bytes if acct is not None else None
    out_mem = outcome.mem_peak if outcome is not None else None
    acct_cpu = acct.total_cpu_s if acct is not None else None
    out_cpu = outcome.cpu_time if outcome is not None else None
    code = status.exit_code
    if code is None and acct is not None and status.state.terminal:
        code = acct.exit_code
    return Attempt(
        task=status.task,
        submission=submission,
        attempt=attempt,
        job_id=status.job_id or (acct.job_id if acct else ""),
        state=status.state,
        reason=status.reason,
        exit_code=code,
        node=_node(outcome, acct),
        start=start,
        end=end if status.state.terminal else None,
        elapsed=elapsed,
        cpu_time=_first(acct_cpu, out_cpu),
        peak_mem=_first(acct_rss, out_mem),
        peak_source=_source(acct_rss, out_mem),
        cpu_source=_source(acct_cpu, out_cpu),
        req_mem=_first(acct.req_mem_bytes if acct else None, requested.mem),
        req_time=requested.time,
        cpus=_first(acct.alloc_cpus if acct else None, requested.cpus),
    )
