"""Tracking: status, watch, logs and list of recorded submissions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hpcbridge.api._common import session

if TYPE_CHECKING:
    from hpcbridge.tracking.record import Record
    from hpcbridge.tracking.summary import SubmissionStatus
    from hpcbridge.tracking.watch import WatchSnapshot

#: ``status`` without ids shows this many of the newest submissions
RECENT = 20


@dataclass(frozen=True)
class StatusReport:
    """The status of the submissions asked about (one scheduler query for all)."""

    submissions: tuple[SubmissionStatus, ...]

    @property
    def failed(self) -> bool:
        """A task failed and no later resubmission made every task complete."""
        return any(s.progress.failed and not (s.latest and s.latest.ok) for s in self.submissions)


def status(ids: Sequence[str] = (), *, show_all: bool = False) -> StatusReport:
    """Task states of the given submissions (without ids: the 20 newest, or all)."""
    sess = session()
    if ids:
        sub_ids = [sess.store.resolve(i) for i in ids]
    else:
        sub_ids = sess.store.ids()
        sub_ids = sub_ids if show_all else sub_ids[-RECENT:]
    cycle = sess.tracker.cycle(sub_ids)
    return StatusReport(tuple(cycle.summary(i) for i in sub_ids))


@dataclass(frozen=True)
class Watch:
    """Snapshots of the watched submissions, one per poll, until every task has finished."""

    interval: float  # seconds between polls
    note: Optional[str]  # why the interval differs from the one asked for
    snapshots: Iterator[WatchSnapshot]


def watch(ids: Sequence[str], *, interval: Optional[float] = None) -> Watch:
    """Follow submissions: iterate :attr:`Watch.snapshots` (it polls and waits)."""
    from hpcbridge.submit.submitter import submit_deferred
    from hpcbridge.tracking.watch import interval_floor
    from hpcbridge.tracking.watch import watch as follow

    sess = session()
    sub_ids = [sess.store.resolve(i) for i in ids]
    every, note = interval_floor(interval, sess.min_interval)
    return Watch(every, note, follow(sess, sub_ids, every, submit_deferred=submit_deferred))


@dataclass(frozen=True)
class TaskLog:
    """One task's log file and its text."""

    id: str
    task: int
    path: Path
    text: str


def logs(sub_ref: str, *, task: Optional[int] = None, stderr: bool = False) -> TaskLog:
    """The Slurm log of one task (default: the first), which must exist."""
    from hpcbridge.tracking.logs import existing_log, log_target

    sess = session()
    target = log_target(sess.store, sess.store.resolve(sub_ref), task, _stream(stderr))
    path = existing_log(target)
    return TaskLog(target.record.id, target.task, path, path.read_text(errors="replace"))


def follow_logs(sub_ref: str, *, task: Optional[int] = None, stderr: bool = False) -> Iterator[str]:
    """The task's log as it grows, until the task has ended (waits for it to start)."""
    from hpcbridge.tracking.logs import follow_task_log, log_target

    sess = session()
    return follow_task_log(
        log_target(sess.store, sess.store.resolve(sub_ref), task, _stream(stderr))
    )


def _stream(stderr: bool) -> str:
    return "error" if stderr else "output"


def list_submissions(limit: int = RECENT) -> list[Record]:
    """The newest ``limit`` records (all when ``limit`` <= 0), oldest first; no query."""
    records = list(session().store.records())
    return records[-limit:] if limit > 0 else records
