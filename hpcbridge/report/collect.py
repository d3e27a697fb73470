"""The thin shell of ``report``: records, task states, outcome files and sacct, as attempts.

One poll cycle (the tracker's, shared with ``status``) gives every task's state
in the submission and its resubmissions; the outcome files give start, end,
node and the cgroup figures; one ``sacct`` call (when the cluster keeps
accounting) gives MaxRSS, TotalCPU, AllocCPUS and ReqMem for all their jobs.
If sacct cannot be asked, the report says why and uses the outcome files alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import HpcbridgeError
from hpcbridge.report.attempt import MIB, Attempt, Requested, make_attempt
from hpcbridge.report.build import Report, build_report
from hpcbridge.scheduler.base import TaskAccounting
from hpcbridge.tracking.outcomes import Outcome, read_outcomes
from hpcbridge.tracking.record import Record
from hpcbridge.tracking.summary import TaskStatus
from hpcbridge.tracking.tracker import Cycle

if TYPE_CHECKING:
    from hpcbridge.tracking.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gathered:
    """What the shell read: records of the chain, task states, outcomes, sacct lines."""

    chain: tuple[str, ...]
    cycle: Cycle  # the poll cycle over the chain (its summaries give the latest view)
    records: dict[str, Record]
    statuses: dict[str, dict[int, TaskStatus]]
    outcomes: dict[str, dict[int, Outcome]]
    accounting: dict[str, dict[int, TaskAccounting]]  # by submission, global task
    source: str  # "sacct" or why not


def chain_of(sess: Session, sub_id: str) -> list[str]:
    """The submission and every resubmission/rerun linked below it, oldest first."""
    seen: list[str] = []
    todo = [sub_id]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.append(current)
        try:
            todo.extend(sess.store.load(current).children)
        except HpcbridgeError as exc:
            log.warning("resubmission %s: %s", current, exc)
            seen.remove(current)
    return [sub_id, *sorted(seen[1:])]


def read_accounting(
    sess: Session, records: Sequence[Record]
) -> tuple[dict[str, dict[int, TaskAccounting]], str]:
    """sacct's figures by submission and global task, and "sacct" or why there are none.

    The figures the poll cycles kept need no query; ended tasks without any are asked
    about in one sacct call per submission (:meth:`Tracker.accounting`)."""
    why = ""
    try:
        ask = sess.poller.limits().accounting
        if not ask:
            why = "none (the cluster keeps no accounting)"
    except HpcbridgeError as exc:  # no Slurm client on this host, controller down ...
        ask, why = False, f"not reachable ({exc.message})"
    figures = {r.id: sess.tracker.accounting(r.id, ask=ask) for r in records}
    if any(figures.values()):
        return figures, "sacct"  # asked now, or kept by the poll cycles that saw tasks end
    return figures, why or "sacct (no figures yet)"


def gather(sess: Session, sub_id: str, *, accounting: bool = True) -> Gathered:
    chain = chain_of(sess, sub_id)
    cycle = sess.tracker.cycle(chain)
    records = {i: cycle.records[i] for i in chain if i in cycle.records}
    outcomes = {i: read_outcomes(sess.store.path(i) / "outcomes") for i in records}
    figures: dict[str, dict[int, TaskAccounting]] = {}
    source = "not asked"
    if accounting:
        figures, source = read_accounting(sess, list(records.values()))
    statuses = {i: cycle.statuses.get(i, {}) for i in records}
    return Gathered(tuple(records), cycle, records, statuses, outcomes, figures, source)


def requested_cpus(record: Record) -> Optional[int]:
    """CPUs per task the job file asks for (Slurm's default: 1); None for sbatch scripts."""
    if record.kind == "sbatch" or not record.job.text:
        return None
    from hpcbridge._toml import loads
    from hpcbridge.job.load import job_from_dict

    try:
        job = job_from_dict(loads(record.job.text), job_dir=record.job.dir, sets=record.job.sets)
    except (HpcbridgeError, ValueError):
        return None
    res = job.resources
    return (res.cpus_per_task or 1) * (res.ntasks or 1)


def attempts_of(g: Gathered) -> list[Attempt]:
    """Every task of every submission of the chain, numbered per task in chain order."""
    counter: dict[int, int] = {}
    out: list[Attempt] = []
    for sub in sorted(g.chain):
        record = g.records[sub]
        cpus = requested_cpus(record)
        statuses, outcomes = g.statuses[sub], g.outcomes[sub]
        for chunk in record.chunks:
            req = Requested(
                mem=chunk.mem * MIB if chunk.mem else None,
                time=chunk.time_limit or record.time_limit,
                cpus=cpus,
            )
            for task, _local in chunk.tasks():
                st = statuses.get(task)
                if st is None:
                    continue
                counter[task] = counter.get(task, 0) + 1
                out.append(
                    make_attempt(
                        st,
                        submission=sub,
                        attempt=counter[task],
                        requested=req,
                        outcome=outcomes.get(task),
                        acct=g.accounting.get(sub, {}).get(task),
                    )
                )
    return out


def collect_report(sess: Session, sub_id: str) -> Report:
    g = gather(sess, sub_id)
    root = g.records[sub_id]
    notes: list[str] = []
    if g.source != "sacct":
        notes.append(
            f"accounting {g.source}: peak memory and CPU time come from the tasks' cgroups "
            "where the job script could read them"
        )
    return build_report(
        sub_id,
        root.name,
        g.chain,
        attempts_of(g),
        accounting=g.source,
        generated_at=time.time(),
        notes=notes,
    )


def latest_attempts(sess: Session, sub_id: str) -> Mapping[int, Attempt]:
    """Each task's latest attempt over the submission and its resubmissions."""
    from hpcbridge.report.sizing import latest_by_task

    return latest_by_task(attempts_of(gather(sess, sub_id)))
