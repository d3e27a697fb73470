"""Polite polling: ONE scheduler query per cycle for all tracked jobs of the user,
shared by every hpcbridge process of the user through a cache file.

``<state>/cache/poll.json`` holds the raw answer of the last query with its
time and the job ids it was asked about; it is read and refreshed under the
lock ``<state>/cache/poll.lock``.  A process that needs an answer takes the
lock; if the cached answer is younger than the site's minimum interval and
covers the jobs it needs, it uses it; otherwise it asks the scheduler once and
writes the answer for the others.  So five ``hpcbridge status`` started within
the interval cause one query, and ``watch`` of many submissions asks once per
cycle.  A failed query (controller down) is cached the same way, so callers
back off together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import SchedulerError, SchedulerUnavailable
from hpcbridge.fsutil import atomic_write_text
from hpcbridge.scheduler import slurm
from hpcbridge.scheduler.base import AccountingUnavailable, ClusterLimits, QueryResult, Scheduler
from hpcbridge.slurm_syntax import format_indices
from hpcbridge.tracking.locking import locked

log = logging.getLogger(__name__)

LIMITS_TTL = 3600.0
# After sacct failed, squeue answers for this long before sacct is tried again.
ACCOUNTING_RETRY = 300.0


@dataclass(frozen=True)
class Answer:
    """A scheduler answer (or the error that stood in for one) and its age."""

    result: Optional[QueryResult]
    at: float
    error: Optional[str] = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None


def _parse(source: str, stdout: str) -> QueryResult:
    return slurm.parse_sacct(stdout) if source == "sacct" else slurm.parse_squeue(stdout)


class Poller:
    """Shared, rate-limited access to the scheduler's view of the user's jobs."""

    def __init__(
        self,
        cache_dir: Path,
        scheduler: Scheduler,
        *,
        user: Optional[str],
        min_interval: float,
        ensure: Callable[[], None] = lambda: None,
    ) -> None:
        self.cache_dir = cache_dir
        self.ensure = ensure  # creates cache_dir (the state store's) before a write
        self.scheduler = scheduler
        self.user = user
        self.min_interval = min_interval
        self.cache_file = cache_dir / "poll.json"
        self.lock_file = cache_dir / "poll.lock"
        self.limits_file = cache_dir / "limits.json"

    # ------------------------------------------------------------ cluster limits

    def cached_limits(self) -> Optional[ClusterLimits]:
        try:
            data = json.loads(self.limits_file.read_text())
            if time.time() - float(data["at"]) > LIMITS_TTL:
                return None
            fields = {k: v for k, v in data["limits"].items() if k != "raw"}
            return ClusterLimits(**fields)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def limits(self, *, refresh: bool = False) -> ClusterLimits:
        """``scontrol show config`` (+ sacctmgr) at most once an hour, shared via the cache."""
        if not refresh:
            cached = self.cached_limits()
            if cached is not None:
                return cached
        limits = self.scheduler.limits(self.user)
        data = {k: v for k, v in limits.__dict__.items() if k != "raw"}
        self.ensure()
        atomic_write_text(
            self.limits_file, json.dumps({"at": time.time(), "limits": data}), mode=0o600
        )
        return limits

    # ------------------------------------------------------------ job states

    def _read_cache(self) -> Optional[dict[str, Any]]:
        try:
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "at" in data else None

    def answer(
        self,
        job_ids: Sequence[str],
        *,
        since: Optional[str] = None,
        max_age: Optional[float] = None,
        queue_view: bool = False,
    ) -> Answer:
        """The scheduler's view of ``job_ids``: cached if young enough, else ONE query.

        ``queue_view``: ask squeue for all the user's jobs even when accounting is
        on (to find the jobs of an interrupted submit by their comment).
        """
        age_limit = self.min_interval if max_age is None else max(max_age, self.min_interval)
        wanted = set(job_ids)
        self.ensure()
        with locked(self.lock_file, timeout=300.0):
            data = self._read_cache()
            now = time.time()
            if data is not None and now - float(data["at"]) < age_limit:
                covered = set(data.get("job_ids", []))
                if data.get("error") is not None:
                    return Answer(None, float(data["at"]), str(data["error"]), cached=True)
                if wanted <= covered and (not queue_view or data.get("source") == "squeue"):
                    result = _parse(str(data["source"]), str(data.get("stdout", "")))
                    return Answer(result, float(data["at"]), cached=True)
            return self._query(sorted(wanted), since, queue_view, data)

    def _query(
        self,
        job_ids: list[str],
        since: Optional[str],
        queue_view: bool,
        previous: Optional[dict[str, Any]] = None,
    ) -> Answer:
        limits = self.cached_limits()
        accounting = limits.accounting if limits is not None else True
        acct_off_until = float((previous or {}).get("accounting_off_until") or 0)
        at = time.time()
        if queue_view or at < acct_off_until:
            accounting = False
        try:
            result = self.scheduler.query(
                job_ids, user=self.user, accounting=accounting, since=since
            )
        except AccountingUnavailable as exc:
            self._write(
                {
                    "at": at,
                    "error": exc.message,
                    "job_ids": job_ids,
                    "accounting_off_until": at + ACCOUNTING_RETRY,
                }
            )
            return Answer(None, at, exc.message)
        except SchedulerUnavailable as exc:
            self._write({"at": at, "error": exc.message, "job_ids": job_ids})
            return Answer(None, at, exc.message)
        except SchedulerError as exc:
            self._write({"at": at, "error": exc.message, "job_ids": job_ids})
            return Answer(None, at, exc.message)
        if accounting and result.source != "sacct" and limits is not None:
            self._remember_no_accounting(limits)
        self._write(
            {
                "at": at,
                "source": result.source,
                "stdout": _unparse(result),
                "job_ids": job_ids,
                "accounting_off_until": acct_off_until if at < acct_off_until else 0,
            }
        )
        return Answer(result, at)

    def _remember_no_accounting(self, limits: ClusterLimits) -> None:
        """sacct said accounting is disabled: stop asking it (until limits are read again)."""
        data = {k: v for k, v in limits.__dict__.items() if k != "raw"}
        data["accounting"] = False
        self.ensure()
        atomic_write_text(
            self.limits_file, json.dumps({"at": time.time(), "limits": data}), mode=0o600
        )

    def _write(self, data: dict[str, Any]) -> None:
        self.ensure()
        atomic_write_text(self.cache_file, json.dumps(data), mode=0o600)


def _unparse(result: QueryResult) -> str:
    """Re-emit a parsed answer in its source's text form (what the cache stores)."""
    lines: list[str] = []
    for j in result.jobs:
        tasks = format_indices(j.task_ids) if j.task_ids is not None else None
        if result.source == "sacct":
            jid = j.job_id if tasks is None else f"{j.job_id}_[{tasks}]"
            code = "" if j.exit_code is None else f"{j.exit_code}:{j.signal or 0}"
            lines.append(f"{jid}|{j.job_id}|{j.raw_state}|{code}|{j.reason}|{j.name}")
        else:
            k = "N/A" if tasks is None else tasks
            lines.append(
                f"{j.job_id}|{j.job_id}|{j.job_id}|{k}|{j.raw_state}|{j.reason}|{j.comment}"
            )
    return "\n".join(lines) + ("\n" if lines else "")
