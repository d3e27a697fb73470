"""The scheduler protocol and the plain values its backends exchange.

A backend is a handful of operations over plain values (PSI/J style); the
Slurm command-line backend builds them from pure argv builders and output
parsers in :mod:`hpcbridge.scheduler.slurm`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from hpcbridge.errors import SchedulerError, SchedulerUnavailable
from hpcbridge.scheduler.states import JobState


class AccountingUnavailable(SchedulerUnavailable):
    """sacct failed (slurmdbd down or restarting); squeue still works."""


class QueryTimedOut(SchedulerUnavailable):
    """A Slurm client did not answer in time (controller overloaded or rate-limiting)."""


class SubmitUnconfirmed(SchedulerError):
    """sbatch did not answer in time: the job may or may not be queued (never retried)."""


@dataclass(frozen=True)
class Submitted:
    """What ``sbatch --parsable`` answered."""

    job_id: str
    cluster: Optional[str] = None


@dataclass(frozen=True)
class TrialRun:
    """What ``sbatch --test-only`` said (it submits nothing)."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class JobInfo:
    """One line of a scheduler answer: a job, an array task, or a pending range of tasks.

    ``job_id`` is the array job id for array tasks (``%F`` / the part before ``_``)
    and the job id otherwise; ``task_ids`` holds the (local) array indices the line
    stands for, or None for a job that is not an array.
    """

    job_id: str
    task_ids: Optional[tuple[int, ...]]
    state: JobState
    raw_state: str
    reason: str = ""
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    comment: str = ""
    name: str = ""


@dataclass(frozen=True)
class QueryResult:
    """A parsed answer of one scheduler query, with what it covers."""

    source: str  # "squeue" (the state query of either backend)
    jobs: tuple[JobInfo, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskAccounting:
    """One job's or array task's accounting figures, parsed from ``sacct -P`` text.

    The allocation line gives state, reason, exit code, times and the request;
    ``max_rss_bytes`` is the largest MaxRSS over the task's steps (``.batch``,
    ``.extern``, ``.0`` ...), None when no step reported one.  Times are sacct's
    local-time text (``2026-11-22T01:51:04``), None when sacct says Unknown/None.
    ``sluid`` (Slurm >= 26.05: the per-run id, new on every requeue) is None where
    the release has no such field.
    """

    job_id: str  # sacct's JobID of the allocation: "123_4" (array task) or "123"
    array_job_id: str  # "123": the array job id, or the job id of a plain job
    task: Optional[int]  # the local array index; None for a plain job
    raw_job_id: str  # JobIDRaw: the task's own job id
    state: JobState
    raw_state: str
    reason: str = ""
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    elapsed_s: Optional[int] = None  # Elapsed
    total_cpu_s: Optional[float] = None  # TotalCPU (user + system, all steps)
    max_rss_bytes: Optional[int] = None  # max MaxRSS over the steps
    req_mem_bytes: Optional[int] = None  # ReqMem (of the whole job)
    alloc_cpus: Optional[int] = None  # AllocCPUS
    node_list: str = ""  # NodeList
    start: Optional[str] = None  # Start
    end: Optional[str] = None  # End
    sluid: Optional[str] = None  # SLUID (26.05+)
    name: str = ""  # JobName

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskAccounting:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["state"] = JobState(values["state"])
        return cls(**values)

    def job_info(self) -> JobInfo:
        """The same task as a state line (what the poll cycle merges)."""
        return JobInfo(
            job_id=self.array_job_id,
            task_ids=None if self.task is None else (self.task,),
            state=self.state,
            raw_state=self.raw_state,
            reason=self.reason,
            exit_code=self.exit_code,
            signal=self.signal,
            name=self.name,
        )


@dataclass(frozen=True)
class AccountingResult:
    """A parsed ``sacct`` answer: one :class:`TaskAccounting` per job / array task."""

    tasks: tuple[TaskAccounting, ...]
    warnings: tuple[str, ...] = ()
    disabled: bool = False  # the cluster keeps no accounting (no slurmdbd)


@dataclass(frozen=True)
class ClusterLimits:
    """Limits and facts read from ``scontrol show config`` (and ``sacctmgr``)."""

    max_array_size: int = 1001
    max_job_count: int = 10000
    min_job_age: int = 300
    accounting: bool = False
    slurm_version: str = ""
    cluster_name: str = ""
    max_submit_jobs: Optional[int] = None  # per user, from sacctmgr, when accounting is on
    raw: dict[str, str] = field(default_factory=dict)


class Scheduler(Protocol):
    """What hpcbridge needs from a batch scheduler."""

    name: str

    def submit(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> Submitted: ...

    def test_only(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> TrialRun:
        """Ask the scheduler whether and when it would run the script; submit nothing."""
        ...

    def version(self) -> str:
        """The Slurm release of the clients (no RPC), e.g. ``slurm-wlm 26.05.5``; "" unknown."""
        ...

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        version: str = "",
        queue_view: bool = False,
    ) -> QueryResult:
        """The given jobs (with every array task) in ONE scheduler call; with
        ``queue_view`` every job of ``user`` with its comment."""
        ...

    def accounting(
        self, job_ids: Sequence[str], *, since: Optional[str] = None, version: str = ""
    ) -> AccountingResult:
        """``sacct`` figures of the given jobs or array tasks (``123``, ``123_4``) in ONE call.

        ``version``: the Slurm release (fields only newer releases have, like SLUID,
        are asked for only there).  Raises AccountingUnavailable when slurmdbd cannot
        be reached; a cluster without accounting gives ``disabled=True``.
        """
        ...

    def limits(self, user: Optional[str] = None) -> ClusterLimits: ...

    def cancel(self, job_ids: Sequence[str]) -> None: ...
