"""Why a task died when nothing but its Slurm log says so (pure, plus one shell helper).

On clusters without cgroups, ``JobAcctGatherParams=OverMemoryKill`` kills a task
with SIGKILL and Slurm reports FAILED with signal 9 (22.05 on the testbed); the
task's log says "StepId=... exceeded memory limit (... > ...), being killed".  A
task killed at its time limit without the TERM reaching it leaves "DUE TO TIME
LIMIT".  :func:`refine_from_log` reads those lines; :func:`refine_from_logs` finds
the few logs worth reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from hpcbridge.errors import StateError
from hpcbridge.scheduler.states import JobState
from hpcbridge.tracking.outcomes import Outcome
from hpcbridge.tracking.record import Record
from hpcbridge.tracking.summary import TaskStatus

# Lines Slurm (and the kernel, through slurmstepd) writes into a task's log when
# it kills the task for memory or time: the cause when nothing else tells it
# (jobacct_gather's OverMemoryKill leaves sacct at FAILED/signal 9).
OOM_MARKERS = ("exceeded memory limit", "oom-kill event", "oom_kill", "out of memory")
TIMEOUT_MARKERS = ("due to time limit",)


def refine_from_log(st: TaskStatus, log_tail: str) -> TaskStatus:
    """A task killed without a reason (FAILED, no exit code or SIGKILL): look at its log."""
    if st.state is not JobState.FAILED or st.signal not in (None, "KILL"):
        return st
    if st.exit_code not in (None, 137):
        return st
    low = log_tail.lower()
    if any(m in low for m in OOM_MARKERS):
        return replace(st, state=JobState.OUT_OF_MEMORY, reason="memory limit exceeded (task log)")
    if any(m in low for m in TIMEOUT_MARKERS):
        return replace(st, state=JobState.TIMEOUT, reason="time limit (task log)")
    return st


def refine_from_logs(
    sub_dir: Path, record: Record, st: dict[int, TaskStatus], outcomes: Mapping[int, Outcome]
) -> None:
    """Killed tasks with no stated cause: read the tail of their logs (few files)."""
    from hpcbridge.tracking.logs import LogTarget, log_tail, pattern_of, task_log_path

    for chunk in record.chunks:
        for task, local in chunk.tasks():
            s = st.get(task)
            if s is None or s.state is not JobState.FAILED or s.exit_code not in (None, 137):
                continue
            target = LogTarget(
                sub_dir, record, chunk, task, local, pattern_of(sub_dir, record, chunk)
            )
            try:
                path = task_log_path(target, outcomes.get(task))
            except StateError:
                continue
            st[task] = refine_from_log(s, log_tail(path))
