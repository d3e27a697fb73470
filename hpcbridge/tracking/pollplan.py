"""The poll cache's decisions, pure: which jobs one shared query covers, which tasks
changed state since the last answer (sacct is asked about those only), and how long
an answer stands when the scheduler is slow or unreachable.

One query covers every job of the user some hpcbridge process is tracking: the
ids asked for now, the ids still active in the last answer and the ids asked for
within :data:`RETAIN` seconds.  So three ``watch`` processes of three submissions
share one query per cycle instead of each asking for its own ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Optional

from hpcbridge.scheduler.base import QueryResult
from hpcbridge.scheduler.states import JobState
from hpcbridge.slurm_syntax import format_indices

# A job id stays in the shared query this long after anyone last needed it.
RETAIN = 120.0
# An answer that took ``took`` seconds stands for PACE_FACTOR * took at least: a
# throttled Slurm client is only seen as slowness (it sleeps 1, 2, 3 ... s and
# retries silently), so a slow answer slows every process of the user down.
PACE_FACTOR = 10.0
# sacct is asked about a task that ended for this long, until it reports it ended
# (slurmctld sends job records to slurmdbd asynchronously).
ACCT_PATIENCE = 600.0
# More ended tasks of one array than this: ``sacct -j <array job>`` instead of each.
SACCT_TASK_LIST = 50


def task_states(result: Optional[QueryResult]) -> dict[str, JobState]:
    """``"123_4"`` (array task) / ``"123"`` (plain job) -> its state in the answer."""
    out: dict[str, JobState] = {}
    for info in result.jobs if result is not None else ():
        if info.task_ids is None:
            out[info.job_id] = info.state
        else:
            for t in info.task_ids:
                out[f"{info.job_id}_{t}"] = info.state
    return out


def job_of(key: str) -> str:
    return key.partition("_")[0]


def transitions(
    previous: Optional[QueryResult], current: QueryResult, tracked: Iterable[str]
) -> set[str]:
    """Tasks of the tracked jobs that ended since ``previous``: ended now and not
    before, or listed as unfinished before and gone now (ended and purged)."""
    jobs = set(tracked)
    old, new = task_states(previous), task_states(current)
    ended = set()
    for key, state in new.items():
        if state.terminal and job_of(key) in jobs and not (key in old and old[key].terminal):
            ended.add(key)
    for key, state in old.items():
        if key not in new and not state.terminal and job_of(key) in jobs:
            ended.add(key)
    return ended


def sacct_ids(keys: Iterable[str]) -> list[str]:
    """The ``sacct -j`` list for these tasks: each task, or its whole array when many."""
    by_job: dict[str, list[str]] = {}
    for key in keys:
        by_job.setdefault(job_of(key), []).append(key)
    out: list[str] = []
    for job, members in sorted(by_job.items()):
        whole = job in members or len(members) > SACCT_TASK_LIST
        out.extend([job] if whole else sorted(members))
    return out


def carry_tracked(
    tracked: Mapping[str, float],
    wanted: Iterable[str],
    last: Optional[QueryResult],
    now: float,
) -> dict[str, float]:
    """Job ids the next shared query asks about, each with when it was last needed."""
    active = {job_of(k) for k, s in task_states(last).items() if not s.terminal}
    out = {j: t for j, t in tracked.items() if j in active or now - t < RETAIN}
    for j in active & set(tracked):
        out[j] = now
    for j in wanted:
        out[j] = now
    return out


def carry_since(
    old: Mapping[str, str], tracked: Iterable[str], wanted: Iterable[str], since: Optional[str]
) -> dict[str, str]:
    """The earliest ``sacct -S`` any caller gave for each tracked job (ISO local times
    compare as text): a sacct call for several processes' jobs must reach the oldest."""
    keep = set(tracked)
    out = {j: s for j, s in old.items() if j in keep}
    if since:
        for j in wanted:
            out[j] = min(out.get(j, since), since)
    return out


def covers(asked: Iterable[str], result: Optional[QueryResult], wanted: Iterable[str]) -> bool:
    """Does an answer to a query about ``asked`` tell about every job in ``wanted``?"""
    known = set(asked) | {i.job_id for i in result.jobs} if result is not None else set(asked)
    return set(wanted) <= known


def pace(took: float, min_interval: float) -> float:
    """How long an answer that took ``took`` seconds stands before anyone asks again."""
    return max(min_interval, PACE_FACTOR * took)


def backoff(failures: int, min_interval: float, max_backoff: float) -> float:
    """How long a failed query's error stands: doubling with each failure in a row."""
    return min(max_backoff, max(min_interval, 1.0) * 2.0 ** max(0, failures - 1))


def unparse_squeue(result: QueryResult) -> str:
    """Re-emit a parsed squeue answer as ``squeue -o '%i|%A|%F|%K|%T|%r|%k'`` text."""
    lines: list[str] = []
    for j in result.jobs:
        tasks = format_indices(j.task_ids) if j.task_ids is not None else None
        k = "N/A" if tasks is None else tasks
        lines.append(f"{j.job_id}|{j.job_id}|{j.job_id}|{k}|{j.raw_state}|{j.reason}|{j.comment}")
    return "\n".join(lines) + ("\n" if lines else "")
