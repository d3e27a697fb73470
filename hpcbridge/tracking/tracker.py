"""One poll cycle over many submissions: the thin shell around the pure summary.

:meth:`Tracker.cycle` loads what is known, asks the scheduler ONCE (through the
shared :class:`~hpcbridge.tracking.poll.Poller`) about every job that is not
finished yet, reads the outcome files and returns each submission's task
states.  Finished tasks are remembered in ``<id>/status.json`` so their files
are not read again.  Records left "pending" by an interrupted submit are
reconciled here from the same answer and the outcome files.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hpcbridge.errors import SchedulerError, StateError
from hpcbridge.fsutil import atomic_write_text
from hpcbridge.scheduler.base import QueryResult, TaskAccounting
from hpcbridge.scheduler.states import JobState
from hpcbridge.tracking import accounting as acct_store
from hpcbridge.tracking.causes import refine_from_logs
from hpcbridge.tracking.outcomes import Outcome, read_outcomes
from hpcbridge.tracking.poll import Answer, Poller
from hpcbridge.tracking.record import Record, Snapshot
from hpcbridge.tracking.store import Store, utc_now
from hpcbridge.tracking.summary import (
    SubmissionStatus,
    TaskStatus,
    refined_by,
    summarise,
    task_statuses,
)

log = logging.getLogger(__name__)

# A chunk submitted this recently may not be visible in accounting yet.
YOUNG = 300.0
# A "pending" record older than this, or whose process is gone, is reconciled.
STALE_PENDING = 3600.0


@dataclass
class Cycle:
    """The outcome of one poll cycle."""

    answer: Optional[Answer]
    statuses: dict[str, dict[int, TaskStatus]]
    records: dict[str, Record]
    # sacct's figures of ended tasks, by submission and global task (kept, no query)
    accounting: dict[str, dict[int, TaskAccounting]] = field(default_factory=dict)

    def summary(self, sub_id: str) -> SubmissionStatus:
        """The submission's status; with resubmissions also each task's latest attempt."""
        record = self.records[sub_id]
        source = ""
        if self.answer is not None:
            source = self.answer.result.source if self.answer.result else "outcomes"
        children = {c: self.statuses[c] for c in record.children if c in self.statuses}
        return summarise(
            record,
            self.statuses.get(sub_id, {}),
            source=source,
            children=children,
            scheduler_error=self.answer.error if self.answer is not None else None,
        )


def _load_known(path: Path) -> dict[int, TaskStatus]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    known: dict[int, TaskStatus] = {}
    try:
        for key, (state, code, sig, reason, job) in raw.items():
            known[int(key)] = TaskStatus(int(key), JobState(state), code, sig, reason, job)
    except (ValueError, TypeError, AttributeError):
        return {}
    return known


def _save_known(path: Path, statuses: Mapping[int, TaskStatus]) -> None:
    data = {
        str(t): [s.state.value, s.exit_code, s.signal, s.reason, s.job_id]
        for t, s in statuses.items()
        if s.state.terminal and s.final
    }
    atomic_write_text(path, json.dumps(data, separators=(",", ":")), mode=0o600)


def _settled(statuses: Mapping[int, TaskStatus]) -> dict[int, JobState]:
    return {t: s.state for t, s in statuses.items() if s.state.terminal and s.final}


def _alive(record: Record) -> bool:
    if record.host != socket.gethostname() or record.pid <= 0:
        return False
    try:
        os.kill(record.pid, 0)
    except OSError:
        return False
    return True


def since_arg(records: Sequence[Record]) -> Optional[str]:
    """``sacct -S`` (local time): a day before the oldest submission asked about."""
    stamps = [r.submitted_epoch for r in records if r.submitted_epoch]
    if not stamps:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(min(stamps) - 86400))


class Tracker:
    """Task states of submissions, from one shared scheduler query per cycle."""

    def __init__(self, store: Store, poller: Poller) -> None:
        self.store = store
        self.poller = poller

    def _load(self, sub_ids: Sequence[str]) -> dict[str, Record]:
        records = {i: self.store.load(i) for i in dict.fromkeys(sub_ids)}
        for rec in list(records.values()):  # children are part of their parent's view
            for child in rec.children:
                if child not in records:
                    try:
                        records[child] = self.store.load(child)
                    except StateError as exc:
                        log.warning("resubmission %s of %s: %s", child, rec.id, exc)
        return records

    def cycle(self, sub_ids: Sequence[str], *, max_age: Optional[float] = None) -> Cycle:
        records = self._load(sub_ids)
        known = {i: _load_known(self.store.path(i) / "status.json") for i in records}
        pending = [
            i
            for i, r in records.items()
            if r.state == "pending"
            and (not _alive(r) or time.time() - r.created_epoch > STALE_PENDING)
        ]
        awaiting = self.poller.awaiting_figures()
        active: list[str] = []
        for i, rec in records.items():
            if i in pending or not set(rec.task_ids()) <= set(known[i]):
                active.extend(rec.job_ids())
            else:  # finished, but sacct still owes figures of some tasks
                active.extend(j for j in rec.job_ids() if j in awaiting)
        answer: Optional[Answer] = None
        if active or pending:
            answer = self.poller.answer(
                sorted(set(active)),
                since=since_arg(list(records.values())),
                max_age=max_age,
                # deferred chunks count the user's queued tasks: one answer serves both
                queue_view=bool(pending) or any(r.deferred for r in records.values()),
            )
        result = answer.result if answer is not None else None
        figures = {i: self._figures(rec) for i, rec in records.items()}
        # outcome files are read AFTER the query: a task the answer shows as ended
        # has written its <T>.end before, so the two never disagree by a race
        outcomes = {
            i: read_outcomes(
                self.store.path(i) / "outcomes",
                skip={t for t, s in known[i].items() if not refined_by(s, figures[i].get(t))},
            )
            for i in records
        }
        for i in pending:
            records[i] = self._reconcile(records[i], outcomes[i], result)
        statuses: dict[str, dict[int, TaskStatus]] = {}
        now = time.time()
        for i, rec in records.items():
            young = {
                str(c.job_id)
                for c in rec.chunks
                if c.job_id and now - (c.submitted_epoch or 0.0) < YOUNG
            }
            st = task_statuses(
                rec,
                outcomes[i],
                result,
                known=known[i],
                young=young,
                accounting=figures[i],
                answered_at=answer.at if answer is not None else None,
            )
            refine_from_logs(self.store.path(i), rec, st, outcomes[i])
            statuses[i] = st
            if _settled(known[i]) != _settled(st):
                _save_known(self.store.path(i) / "status.json", st)
            records[i] = self._snapshot(rec, st)
        return Cycle(answer, statuses, records, figures)

    def _figures(self, record: Record) -> dict[int, TaskAccounting]:
        """The record's kept sacct figures, with new ones from the poller's hand-off."""
        sub_dir = self.store.path(record.id)
        kept = acct_store.load_store(sub_dir)
        new = acct_store.collect(record, kept, self.poller.cache_dir)
        if new:
            kept.update(new)
            try:
                acct_store.save_store(sub_dir, kept)
            except OSError as exc:
                log.warning("could not keep the accounting figures of %s: %s", record.id, exc)
        return kept

    def accounting(self, sub_id: str, *, ask: bool = True) -> dict[int, TaskAccounting]:
        """sacct's figures of the submission's ended tasks, by global task index.

        Kept figures (from the poll cycles that saw the tasks end) need no query;
        with ``ask``, ended tasks without figures are asked about in ONE sacct call
        (when the cluster keeps accounting).  Tasks still running have none.
        """
        record = self.store.load(sub_id)
        kept = self._figures(record)
        statuses = _load_known(self.store.path(sub_id) / "status.json")
        missing = {
            acct_store.task_key(record, str(c.job_id), local)
            for c in record.chunks
            if c.job_id
            for task, local in c.tasks()
            if task not in kept and task in statuses
        }
        limits = self.poller.cached_limits()
        if not ask or not missing or (limits is not None and not limits.accounting):
            return kept
        try:
            self.poller.accounting(sorted(missing), since=since_arg([record]))
        except (SchedulerError, StateError) as exc:
            log.warning("accounting of %s: %s", sub_id, exc.message)
            return kept
        return self._figures(record)

    def _snapshot(self, record: Record, statuses: Mapping[int, TaskStatus]) -> Record:
        counts: dict[str, int] = {}
        for s in statuses.values():
            counts[s.state.value] = counts.get(s.state.value, 0) + 1
        if record.snapshot is not None and record.snapshot.counts == counts:
            return record
        stamp = Snapshot(counts, utc_now())

        def change(r: Record) -> None:
            r.snapshot = stamp

        try:
            return self.store.update(record.id, change)
        except (StateError, OSError) as exc:  # a convenience; never fail a status for it
            log.warning("could not update the snapshot of %s: %s", record.id, exc)
            return record

    def _reconcile(
        self, record: Record, outcomes: Mapping[int, Outcome], result: Optional[QueryResult]
    ) -> Record:
        """Find the Slurm job ids of an interrupted submit (comment ``hpcb:<id>.<n>``)."""
        tag = f"hpcb:{record.id}"
        found: dict[int, str] = {}
        for info in result.jobs if result is not None else ():
            for text in (info.comment, info.name):
                if text.startswith(tag + ".") and text[len(tag) + 1 :].isdigit():
                    found[int(text[len(tag) + 1 :])] = info.job_id
        for n, chunk in enumerate(record.chunks):
            if n in found or chunk.job_id:
                continue
            for t in sorted({t for t, _ in chunk.tasks()} & set(outcomes)):
                job = outcomes[t].array_job_id or outcomes[t].job_id
                if job:
                    found[n] = job
                    break
        old = time.time() - record.created_epoch > STALE_PENDING

        def change(r: Record) -> None:
            for n, job in found.items():
                if n < len(r.chunks) and not r.chunks[n].job_id:
                    r.chunks[n].job_id = job
                    r.chunks[n].reconciled = True
            if all(c.job_id for c in r.chunks):
                r.state = "submitted"
            elif any(c.job_id for c in r.chunks):
                r.state = "partial"
            elif old and result is not None:
                r.state = "failed"
                r.error = "the submit was interrupted and no job reached Slurm"

        if not (found or old):
            return record
        record = self.store.update(record.id, change)
        log.info("reconciled %s: %s", record.id, record.state)
        return record
