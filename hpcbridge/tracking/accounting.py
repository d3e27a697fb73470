"""Where per-task accounting figures (:class:`TaskAccounting`, from sacct) are kept.

* ``<state>/cache/acct/<array job id>.json``: what the shared poller's sacct calls
  returned, by ``"123_4"`` / ``"123"``; the hand-off between the process that
  asked and every other process of the user (pruned after :data:`KEEP_DAYS`).
* ``<state>/submissions/<id>/accounting.json``: the figures of the submission's
  tasks by global task index, copied from the hand-off by the first poll cycle
  that sees them; durable, so ``status`` and ``report`` need no extra query.

Only figures of ended tasks are kept (those of a running task are partial).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from hpcbridge.fsutil import atomic_write_text
from hpcbridge.scheduler.base import AccountingResult, TaskAccounting
from hpcbridge.tracking.record import Record

log = logging.getLogger(__name__)

KEEP_DAYS = 14
STORE = "accounting.json"


def _key(acct: TaskAccounting) -> str:
    return acct.job_id


def _read(path: Path) -> dict[str, TaskAccounting]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, TaskAccounting] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        try:
            out[str(key)] = TaskAccounting.from_dict(value)
        except (KeyError, TypeError, ValueError):
            log.warning("skipped a malformed accounting entry %r in %s", key, path)
    return out


def _write(path: Path, data: Mapping[str, TaskAccounting]) -> None:
    text = json.dumps({k: v.to_dict() for k, v in sorted(data.items())}, separators=(",", ":"))
    atomic_write_text(path, text, mode=0o600)


def handoff_dir(cache_dir: Path) -> Path:
    return cache_dir / "acct"


def write_handoff(cache_dir: Path, result: AccountingResult) -> None:
    """Merge the ended tasks of a sacct answer into the per-job hand-off files."""
    by_job: dict[str, list[TaskAccounting]] = {}
    for acct in result.tasks:
        if acct.state.terminal:
            by_job.setdefault(acct.array_job_id, []).append(acct)
    if not by_job:
        return
    folder = handoff_dir(cache_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    for job, tasks in by_job.items():
        path = folder / f"{job}.json"
        data = _read(path)
        data.update({_key(a): a for a in tasks})
        _write(path, data)
    _prune(folder)


def _prune(folder: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400
    for entry in os.scandir(folder):
        try:
            if entry.name.endswith(".json") and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            continue


def read_handoff(cache_dir: Path, job_ids: Iterable[str]) -> dict[str, TaskAccounting]:
    """The hand-off entries of these (array) job ids: ``"123_4"`` / ``"123"`` -> figures."""
    out: dict[str, TaskAccounting] = {}
    folder = handoff_dir(cache_dir)
    for job in job_ids:
        out.update(_read(folder / f"{job}.json"))
    return out


def load_store(sub_dir: Path) -> dict[int, TaskAccounting]:
    """A submission's kept figures by global task index."""
    return {int(k): v for k, v in _read(sub_dir / STORE).items() if k.isdigit()}


def save_store(sub_dir: Path, data: Mapping[int, TaskAccounting]) -> None:
    _write(sub_dir / STORE, {str(k): v for k, v in data.items()})


def task_key(record: Record, job_id: str, local: int) -> str:
    """The hand-off key of one task of ``record``: ``"123_4"`` or ``"123"``."""
    return f"{job_id}_{local}" if record.is_array else job_id


def collect(
    record: Record, kept: Mapping[int, TaskAccounting], cache_dir: Path
) -> dict[int, TaskAccounting]:
    """The record's tasks' figures not kept yet, from the hand-off files (new entries only)."""
    jobs = {c.job_id for c in record.chunks if c.job_id}
    if not jobs or len(kept) >= record.task_count:
        return {}
    handed = read_handoff(cache_dir, sorted(jobs))
    if not handed:
        return {}
    new: dict[int, TaskAccounting] = {}
    for chunk in record.chunks:
        if not chunk.job_id:
            continue
        for task, local in chunk.tasks():
            acct = handed.get(task_key(record, chunk.job_id, local))
            if acct is not None and kept.get(task) != acct:
                new[task] = acct
    return new
