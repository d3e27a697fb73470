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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.fsutil import atomic_write_text
from hpcbridge.scheduler.base import QueryResult
from hpcbridge.scheduler.states import JobState
from hpcbridge.tracking.outcomes import Outcome, read_outcomes
from hpcbridge.tracking.poll import Answer, Poller
from hpcbridge.tracking.store import Record, Store
from hpcbridge.tracking.summary import (
    TaskStatus,
    chunk_tasks,
    latest_view,
    refine_from_log,
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

    def summary(self, sub_id: str, *, latest: bool = True) -> dict[str, Any]:
        record = self.records[sub_id]
        own = self.statuses.get(sub_id, {})
        source = ""
        if self.answer is not None:
            source = self.answer.result.source if self.answer.result else "outcomes"
        data = summarise(record, own, source=source)
        data["state"] = record.get("state")
        data["error"] = record.get("error")
        children = [c for c in record.get("children", []) if c in self.statuses]
        if latest and children:
            merged = latest_view(own, [self.statuses[c] for c in children])
            data["children"] = children
            data["latest"] = {
                k: v
                for k, v in summarise(record, merged).items()
                if k in ("counts", "failed", "failed_tasks", "done", "ok", "finished")
            }
        if self.answer is not None and self.answer.error:
            data["scheduler_error"] = self.answer.error
        return data


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


def _alive(record: Record) -> bool:
    if record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(record.get("pid", 0)), 0)
    except (OSError, ValueError):
        return False
    return True


def since_arg(records: Sequence[Record]) -> Optional[str]:
    """``sacct -S`` (local time): a day before the oldest submission asked about."""
    stamps = [float(r["submitted_epoch"]) for r in records if r.get("submitted_epoch")]
    if not stamps:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(min(stamps) - 86400))


def _refine_from_logs(sub_dir: Path, record: Record, st: dict[int, TaskStatus]) -> None:
    """Killed tasks with no stated cause: read the tail of their logs (few files)."""
    from hpcbridge.tracking.logs import log_path, log_tail

    for chunk in record.get("chunks", []):
        for task, local in chunk_tasks(chunk):
            s = st.get(task)
            if s is None or s.state is not JobState.FAILED or s.exit_code not in (None, 137):
                continue
            st[task] = refine_from_log(s, log_tail(log_path(sub_dir, record, chunk, local)))


class Tracker:
    """Task states of submissions, from one shared scheduler query per cycle."""

    def __init__(self, store: Store, poller: Poller) -> None:
        self.store = store
        self.poller = poller

    def cycle(self, sub_ids: Sequence[str], *, max_age: Optional[float] = None) -> Cycle:
        ids = list(dict.fromkeys(sub_ids))
        records: dict[str, Record] = {i: self.store.load(i) for i in ids}
        for rec in list(records.values()):  # children are part of their parent's view
            for child in rec.get("children", []):
                if child not in records:
                    try:
                        records[child] = self.store.load(child)
                    except Exception as exc:
                        log.warning("resubmission %s of %s: %s", child, rec["id"], exc)
        known = {i: _load_known(self.store.path(i) / "status.json") for i in records}
        pending = [
            r
            for r in records.values()
            if r.get("state") == "pending"
            and (not _alive(r) or time.time() - float(r.get("created_epoch", 0)) > STALE_PENDING)
        ]
        active: list[str] = []
        for i, rec in records.items():
            tasks = {t for c in rec.get("chunks", []) for t, _ in chunk_tasks(c)}
            if rec in pending or not tasks <= set(known[i]):
                active.extend(str(c["job_id"]) for c in rec.get("chunks", []) if c.get("job_id"))
        answer: Optional[Answer] = None
        if active or pending:
            answer = self.poller.answer(
                sorted(set(active)),
                since=since_arg(list(records.values())),
                max_age=max_age,
                queue_view=bool(pending),
            )
        result = answer.result if answer is not None else None
        # outcome files are read AFTER the query: a task the answer shows as ended
        # has written its <T>.end before, so the two never disagree by a race
        outcomes = {
            i: read_outcomes(self.store.path(i) / "outcomes", skip=known[i]) for i in records
        }
        for rec in pending:
            self._reconcile(rec, outcomes[rec["id"]], result)
        statuses: dict[str, dict[int, TaskStatus]] = {}
        now = time.time()
        for i, rec in records.items():
            young = {
                str(c["job_id"])
                for c in rec.get("chunks", [])
                if c.get("job_id") and now - float(c.get("submitted_epoch") or 0) < YOUNG
            }
            st = task_statuses(rec, outcomes[i], result, known=known[i], young=young)
            _refine_from_logs(self.store.path(i), rec, st)
            statuses[i] = st
            if len(known[i]) != sum(1 for s in st.values() if s.state.terminal and s.final):
                _save_known(self.store.path(i) / "status.json", st)
            self._snapshot(rec, st)
        return Cycle(answer, statuses, records)

    def _snapshot(self, record: Record, statuses: Mapping[int, TaskStatus]) -> None:
        counts: dict[str, int] = {}
        for s in statuses.values():
            counts[s.state.value] = counts.get(s.state.value, 0) + 1
        if record.get("snapshot", {}).get("counts") == counts:
            return
        stamp = {"counts": counts, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

        def change(r: Record) -> None:
            r["snapshot"] = stamp

        try:
            record.update(self.store.update(record["id"], change))
        except Exception as exc:  # a snapshot is a convenience; never fail a status for it
            log.warning("could not update the snapshot of %s: %s", record["id"], exc)

    def _reconcile(
        self, record: Record, outcomes: Mapping[int, Outcome], result: Optional[QueryResult]
    ) -> None:
        """Find the Slurm job ids of an interrupted submit (comment ``hpcb:<id>.<n>``)."""
        tag = f"hpcb:{record['id']}"
        found: dict[int, str] = {}
        for info in result.jobs if result is not None else ():
            for text in (info.comment, info.name):
                if text.startswith(tag + ".") and text[len(tag) + 1 :].isdigit():
                    found[int(text[len(tag) + 1 :])] = info.job_id
        for n, chunk in enumerate(record.get("chunks", [])):
            if n in found or chunk.get("job_id"):
                continue
            tasks = {t for t, _ in chunk_tasks(chunk)}
            for t in tasks & set(outcomes):
                o = outcomes[t]
                job = o.array_job_id or o.job_id
                if job:
                    found[n] = job
                    break
        old = time.time() - float(record.get("created_epoch", 0)) > STALE_PENDING

        def change(r: Record) -> None:
            for n, job in found.items():
                if n < len(r["chunks"]) and not r["chunks"][n].get("job_id"):
                    r["chunks"][n]["job_id"] = job
                    r["chunks"][n]["reconciled"] = True
            if all(c.get("job_id") for c in r["chunks"]):
                r["state"] = "submitted"
            elif any(c.get("job_id") for c in r["chunks"]):
                r["state"] = "partial"
            elif old and result is not None:
                r["state"] = "failed"
                r["error"] = "the submit was interrupted and no job reached Slurm"

        if found or old:
            record.update(self.store.update(record["id"], change))
            log.info("reconciled %s: %s", record["id"], record.get("state"))
