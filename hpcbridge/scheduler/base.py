"""The scheduler protocol and the plain values its backends exchange.

A backend is a handful of operations over plain values (PSI/J style); the
Slurm command-line backend builds them from pure argv builders and output
parsers in :mod:`hpcbridge.scheduler.slurm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

from hpcbridge.errors import SchedulerUnavailable
from hpcbridge.scheduler.states import JobState


class AccountingUnavailable(SchedulerUnavailable):
    """sacct failed (slurmdbd down or restarting); squeue still works."""


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

    source: str  # "squeue" or "sacct" (or the backend's name)
    jobs: tuple[JobInfo, ...]
    warnings: tuple[str, ...] = ()


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

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        accounting: bool,
        since: Optional[str] = None,
    ) -> QueryResult:
        """All given jobs (with every array task) in ONE scheduler call."""
        ...

    def limits(self, user: Optional[str] = None) -> ClusterLimits: ...

    def cancel(self, job_ids: Sequence[str]) -> None: ...
