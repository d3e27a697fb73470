"""Merge the outcome files with one scheduler answer into per-task states (pure).

Sources, most trusted first for each question:

* *Why did it end?* (time-out, out of memory, node failure, cancelled): only the
  scheduler knows (squeue within MinJobAge, sacct with accounting).
* *Did it end, and with which exit code?* The task's own ``<T>.end`` file.
* *Is it pending or running?* The scheduler; but a ``<T>.start`` written after
  the scheduler's answer was taken (the answer is shared and may be up to a poll
  interval old) means running until its ``<T>.end`` or a newer answer says
  otherwise.
* *Figures* (MaxRSS, Elapsed, ...) and a reason for a task squeue has forgotten:
  sacct, asked once when the task ended (:mod:`hpcbridge.tracking.accounting`).

A task the scheduler no longer knows, with a start but no end file, was killed
without a chance to record anything (SIGKILL: memory limit, node failure): it
counts as FAILED, so ``resubmit --failed`` reruns it.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

from hpcbridge.scheduler.base import JobInfo, QueryResult, TaskAccounting
from hpcbridge.scheduler.states import REASON_STATES, JobState
from hpcbridge.slurm_syntax import format_indices
from hpcbridge.tracking.outcomes import Outcome
from hpcbridge.tracking.record import Record

# A task signalled this close to its time limit (or later) timed out.
TIMEOUT_SLACK = 10.0
# A start file written up to this long before an answer (node and login clocks
# differ) is still taken as newer than the answer.
START_SLACK = 30.0


@dataclass(frozen=True)
class TaskStatus:
    task: int
    state: JobState
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    reason: str = ""
    job_id: str = ""  # "123_4" (array) or "123"
    # False while the scheduler may still refine it (e.g. a non-zero exit that
    # Slurm will call OUT_OF_MEMORY): only final statuses are remembered.
    final: bool = True
    # The task recorded its end but the scheduler still lists it as running (it is
    # finishing): its cause may still change; ``watch`` waits for it.
    settling: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "reason": self.reason,
            "job_id": self.job_id,
        }


def signal_name(number: Optional[int]) -> Optional[str]:
    """15 -> "TERM"; 0 / None -> None."""
    if not number:
        return None
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


# Scheduler states a task that has started cannot be in (the answer predates the start).
WAITING = frozenset({JobState.PENDING, JobState.REQUEUED})


def index_jobs(
    result: Optional[QueryResult],
) -> tuple[dict[tuple[str, int], JobInfo], dict[str, JobInfo]]:
    """Scheduler lines by (job id, local task) and, for plain jobs, by job id."""
    tasks: dict[tuple[str, int], JobInfo] = {}
    plain: dict[str, JobInfo] = {}
    if result is None:
        return tasks, plain
    for info in result.jobs:
        if info.task_ids is None:
            plain[info.job_id] = info
        else:
            for i in info.task_ids:
                tasks[(info.job_id, i)] = info
    return tasks, plain


def _from_outcome(
    task: int, out: Outcome, job_id: str, cancelled: bool, time_limit: Optional[float]
) -> TaskStatus:
    code = out.exit_code
    sig = out.signal_name
    if code == 0:
        return TaskStatus(task, JobState.COMPLETED, 0, None, "", job_id)
    if sig is not None:
        if cancelled:
            return TaskStatus(task, JobState.CANCELLED, code, sig, "cancelled by hpcbridge", job_id)
        elapsed = out.elapsed
        if time_limit and elapsed is not None and elapsed >= time_limit - TIMEOUT_SLACK:
            reason = f"signal {sig} after {elapsed:.0f} s, at the time limit ({time_limit:.0f} s)"
            return TaskStatus(task, JobState.TIMEOUT, code, sig, reason, job_id)
        return TaskStatus(task, JobState.FAILED, code, sig, f"killed by signal {sig}", job_id)
    # a failed run-time check (a node-local bind source missing...) says why
    return TaskStatus(task, JobState.FAILED, code, None, out.reason or f"exit code {code}", job_id)


def started_since(outcome: Optional[Outcome], answered_at: Optional[float]) -> bool:
    """Did the task start (and not end) after the scheduler's answer was taken?"""
    if outcome is None or outcome.finished or answered_at is None:
        return False
    return outcome.started is None or outcome.started > answered_at - START_SLACK


def task_status(
    task: int,
    local: int,
    chunk_job: Optional[str],
    *,
    is_array: bool,
    outcome: Optional[Outcome],
    info: Optional[JobInfo],
    query_ok: bool,
    cancelled: bool,
    time_limit: Optional[float],
    answered_at: Optional[float] = None,
) -> TaskStatus:
    """The state of one task from its outcome files and its scheduler line.

    ``info``: the task's line in squeue's answer, or sacct's once it ended (see
    :func:`_pick`); a task missing from the answer has left the scheduler (squeue's
    answer is the controller's own table).  ``answered_at``: when the answer was
    taken (a task that started since runs, whatever it says).
    """
    job_id = "" if chunk_job is None else (f"{chunk_job}_{local}" if is_array else chunk_job)
    if chunk_job is None:
        if cancelled:
            return TaskStatus(task, JobState.CANCELLED, reason="cancelled before submission")
        return TaskStatus(task, JobState.PENDING, reason="not submitted yet")
    if info is not None and info.state in REASON_STATES:
        code = outcome.exit_code if outcome and outcome.finished else info.exit_code
        sig = outcome.signal_name if outcome else None
        reason = info.reason or info.raw_state
        return TaskStatus(task, info.state, code, sig, reason, job_id)
    if outcome is not None and outcome.finished:
        st = _from_outcome(task, outcome, job_id, cancelled, time_limit)
        if st.state is not JobState.COMPLETED and (not query_ok or info is not None):
            # the scheduler still lists it (or was not asked): it may add a reason
            return replace(
                st,
                final=info is not None and info.state.terminal,
                settling=info is not None and not info.state.terminal,
            )
        return st
    if info is not None:
        if info.state is JobState.COMPLETED or info.state is JobState.FAILED:
            code, sig = info.exit_code, signal_name(info.signal)
            if sig is not None and info.signal and not code:
                code = 128 + int(info.signal)  # the shell's convention, as in outcome files
            reason = info.reason if info.state is JobState.FAILED else ""
            if info.state is JobState.FAILED and not reason:
                reason = f"killed by signal {sig}" if sig else "failed (no outcome file)"
            # its outcome file may still show up (NFS): final only with an exit code
            return TaskStatus(task, info.state, code, sig, reason, job_id, final=code is not None)
        if info.state in WAITING and started_since(outcome, answered_at):
            return TaskStatus(task, JobState.RUNNING, reason="started", job_id=job_id)
        return TaskStatus(task, info.state, None, None, info.reason, job_id)
    if cancelled:
        return TaskStatus(task, JobState.CANCELLED, reason="cancelled by hpcbridge", job_id=job_id)
    if not query_ok:
        state = JobState.RUNNING if outcome is not None else JobState.UNKNOWN
        return TaskStatus(task, state, reason="scheduler not reachable", job_id=job_id)
    if started_since(outcome, answered_at):
        return TaskStatus(task, JobState.RUNNING, reason="started", job_id=job_id)
    if outcome is not None:
        why = "ended without recording an outcome (SIGKILL: memory limit or node failure?)"
        return TaskStatus(task, JobState.FAILED, None, None, why, job_id)
    return TaskStatus(
        task, JobState.FAILED, None, None, "unknown to the scheduler and never started", job_id
    )


def _pick(squeue: Optional[JobInfo], acct: Optional[TaskAccounting]) -> Optional[JobInfo]:
    """sacct's line once the task ended (it has the reason and exit code), unless squeue
    says the task runs again (requeued)."""
    if acct is not None and acct.state.terminal and (squeue is None or squeue.state.terminal):
        return acct.job_info()
    return squeue


def task_statuses(
    record: Record,
    outcomes: Mapping[int, Outcome],
    result: Optional[QueryResult],
    *,
    known: Optional[Mapping[int, TaskStatus]] = None,
    young: frozenset[str] | set[str] = frozenset(),
    accounting: Optional[Mapping[int, TaskAccounting]] = None,
    answered_at: Optional[float] = None,
) -> dict[int, TaskStatus]:
    """Every task of a record; ``known`` holds earlier terminal statuses to keep as they
    are (unless sacct has since given a reason only the scheduler knows).

    ``young``: job ids submitted so recently that the scheduler's answer may not
    show them yet; missing from the answer, they are PENDING.  ``accounting``:
    sacct's figures by global task.  ``answered_at``: when the answer was taken.
    """
    by_task, plain = index_jobs(result)
    query_ok = result is not None
    cancelled = record.cancelled_tasks()
    if record.state == "failed":  # an interrupted submit that never reached Slurm
        cancelled |= {t for c in record.chunks if not c.job_id for t, _ in c.tasks()}
    time_limit = float(record.time_limit) if record.time_limit else None
    out: dict[int, TaskStatus] = {}
    for chunk in record.chunks:
        job = chunk.job_id
        limit_s = float(chunk.time_limit) if chunk.time_limit else time_limit
        for task, local in chunk.tasks():
            acct = accounting.get(task) if accounting else None
            if known is not None and task in known and not refined_by(known[task], acct):
                out[task] = known[task]
                continue
            info = None
            if job is not None:
                info = by_task.get((job, local)) if record.is_array else plain.get(job)
                info = _pick(info, acct)
                if info is None and job in young and task not in outcomes and query_ok:
                    out[task] = TaskStatus(
                        task, JobState.PENDING, reason="just submitted", job_id=str(job)
                    )
                    continue
            out[task] = task_status(
                task,
                local,
                job,
                is_array=record.is_array,
                outcome=outcomes.get(task),
                info=info,
                query_ok=query_ok,
                cancelled=task in cancelled,
                time_limit=limit_s,
                answered_at=answered_at,
            )
    return out


def refined_by(known: TaskStatus, acct: Optional[TaskAccounting]) -> bool:
    """Does sacct name a cause (OUT_OF_MEMORY ...) a remembered status lacks?"""
    return acct is not None and acct.state in REASON_STATES and acct.state is not known.state


@dataclass(frozen=True)
class Progress:
    """Counts per state over a set of task statuses."""

    total: int
    finished: int
    counts: dict[str, int]
    failed: tuple[TaskStatus, ...]

    @property
    def failed_tasks(self) -> str:
        return format_indices([f.task for f in self.failed])

    @property
    def done(self) -> bool:
        return self.finished == self.total

    @property
    def ok(self) -> bool:
        return self.counts.get(JobState.COMPLETED.value, 0) == self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "counts": dict(self.counts),
            "failed": [f.to_dict() for f in self.failed],
            "failed_tasks": self.failed_tasks,
            "done": self.done,
            "ok": self.ok,
        }


def progress(statuses: Mapping[int, TaskStatus]) -> Progress:
    counts: dict[str, int] = {}
    failed: list[TaskStatus] = []
    for task in sorted(statuses):
        st = statuses[task]
        counts[st.state.value] = counts.get(st.state.value, 0) + 1
        if st.state.failed:
            failed.append(st)
    finished = sum(1 for s in statuses.values() if s.state.terminal)
    return Progress(len(statuses), finished, dict(sorted(counts.items())), tuple(failed))


@dataclass(frozen=True)
class SubmissionStatus:
    """One submission's state: the ``status --json`` object."""

    record: Record
    progress: Progress
    source: str = ""  # squeue, outcomes, or "" (nothing needed asking)
    children: tuple[str, ...] = ()  # resubmissions whose attempts ``latest`` counts
    latest: Optional[Progress] = None  # each task's latest attempt (with children)
    scheduler_error: Optional[str] = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def view(self) -> Progress:
        """The progress that counts: the latest attempts when there are resubmissions."""
        return self.latest if self.latest is not None else self.progress

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        data: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "kind": r.kind,
            "parent": r.parent,
            "submitted_at": r.submitted_at,
            "job_ids": [c.job_id for c in r.chunks],
            "total": self.progress.total,
            **self.progress.to_dict(),
            "source": self.source,
            "state": r.state,
            "error": r.error,
        }
        if self.latest is not None:
            data["children"] = list(self.children)
            data["latest"] = self.latest.to_dict()
        if self.scheduler_error:
            data["scheduler_error"] = self.scheduler_error
        return data


def summarise(
    record: Record,
    statuses: Mapping[int, TaskStatus],
    *,
    source: str = "",
    children: Mapping[str, Mapping[int, TaskStatus]] | None = None,
    scheduler_error: Optional[str] = None,
) -> SubmissionStatus:
    """The status of ``record`` from its task statuses (and its resubmissions' statuses)."""
    latest = None
    if children:
        latest = progress(latest_view(statuses, list(children.values())))
    return SubmissionStatus(
        record, progress(statuses), source, tuple(children or ()), latest, scheduler_error
    )


def latest_view(
    statuses: Mapping[int, TaskStatus], children: list[Mapping[int, TaskStatus]]
) -> dict[int, TaskStatus]:
    """Each task's latest attempt: children (resubmissions, oldest first) override."""
    merged = dict(statuses)
    for child in children:
        for task, st in child.items():
            if task in merged:
                merged[task] = st
    return merged
