"""Polite polling: ONE scheduler query per cycle for every tracked job of the user,
shared by every hpcbridge process of the user through a cache file.

``<state>/cache/poll.json`` holds the last answer (as squeue text) with its time,
how long it took, the job ids it was asked about and the ids the next query
must cover (:func:`~hpcbridge.tracking.pollplan.carry_tracked`).  It is read and
refreshed under the lock ``<state>/cache/poll.lock``, held for the query itself:
at most one query of the user is in flight, whatever the number of processes.
A caller whose jobs the cached answer covers and that is young enough (the
site's minimum interval, or longer after a slow answer: a rate-limited Slurm
client only shows as slowness) uses it; otherwise it asks once for all of them.

The query is ``squeue --only-job-state -t all -j <ids>`` where the release has it
(>= 23.11.5; detected once from ``squeue --version``, kept in
``<state>/cache/slurm.json``), plain ``squeue -t all -j <ids>`` before.  Tasks
that ended since the previous answer are then asked about once with
``sacct -P`` (reasons, exit codes, MaxRSS, Elapsed, SLUID), when the cluster
keeps accounting; the figures go to the hand-off files of
:mod:`hpcbridge.tracking.accounting`.  A failed query is cached the same way,
standing for a doubling backoff, so callers back off together.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge import runner
from hpcbridge.errors import SchedulerError, StateError
from hpcbridge.fsutil import atomic_write_text
from hpcbridge.scheduler import slurm
from hpcbridge.scheduler.base import (
    AccountingResult,
    AccountingUnavailable,
    ClusterLimits,
    QueryResult,
    Scheduler,
)
from hpcbridge.tracking import pollplan
from hpcbridge.tracking.accounting import write_handoff
from hpcbridge.tracking.locking import locked

log = logging.getLogger(__name__)

LIMITS_TTL = 3600.0
VERSION_TTL = 86400.0
# After sacct failed, it is not asked again for this long.
ACCOUNTING_RETRY = 300.0
# A caller waits this long for another process's query before giving up for this cycle.
LOCK_WAIT = 180.0


@dataclass(frozen=True)
class Answer:
    """A scheduler answer (or the error that stood in for one) and its age."""

    result: Optional[QueryResult]
    at: float
    error: Optional[str] = None
    cached: bool = False
    pace: float = 0.0  # seconds this answer stands before anyone asks again

    @property
    def ok(self) -> bool:
        return self.result is not None


class Poller:
    """Shared, rate-limited access to the scheduler's view of the user's jobs."""

    def __init__(
        self,
        cache_dir: Path,
        scheduler: Scheduler,
        *,
        user: Optional[str],
        min_interval: float,
        max_backoff: float = 600.0,
        ensure: Optional[Callable[[], None]] = None,
    ) -> None:
        """``ensure`` creates the cache directory (only once something is written)."""
        self.ensure = ensure or (lambda: cache_dir.mkdir(parents=True, exist_ok=True))
        self.cache_dir = cache_dir
        self.scheduler = scheduler
        self.user = user
        self.min_interval = min_interval
        self.max_backoff = max(max_backoff, min_interval)
        self.cache_file = cache_dir / "poll.json"
        self.lock_file = cache_dir / "poll.lock"
        self.limits_file = cache_dir / "limits.json"
        self.version_file = cache_dir / "slurm.json"

    # ------------------------------------------------------------ cluster facts

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
        self._write_limits(limits)
        return limits

    def _write_limits(self, limits: ClusterLimits) -> None:
        self.ensure()
        data = {k: v for k, v in limits.__dict__.items() if k != "raw"}
        atomic_write_text(
            self.limits_file, json.dumps({"at": time.time(), "limits": data}), mode=0o600
        )

    def version(self) -> str:
        """The Slurm release of the ``squeue`` on PATH, asked once (no RPC) and cached."""
        where = runner.which("squeue") or ""
        try:
            stamp = os.stat(where).st_mtime if where else 0.0
        except OSError:
            stamp = 0.0
        try:
            data = json.loads(self.version_file.read_text())
            if (
                data.get("squeue") == where
                and data.get("mtime") == stamp
                and time.time() - float(data["at"]) < VERSION_TTL
            ):
                return str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        version = self.scheduler.version()
        record = {"version": version, "squeue": where, "mtime": stamp, "at": time.time()}
        self.ensure()
        atomic_write_text(self.version_file, json.dumps(record), mode=0o600)
        return version

    # ------------------------------------------------------------ job states

    def _read_cache(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and "at" in data else {}

    def answer(
        self,
        job_ids: Sequence[str],
        *,
        since: Optional[str] = None,
        max_age: Optional[float] = None,
        queue_view: bool = False,
    ) -> Answer:
        """The scheduler's view of ``job_ids``: cached if young enough, else ONE query.

        ``queue_view``: every job of the user with its comment (to count the
        user's queued tasks, or find the jobs of an interrupted submit).
        """
        age_limit = self.min_interval if max_age is None else max(max_age, self.min_interval)
        self.ensure()
        try:
            with locked(self.lock_file, timeout=LOCK_WAIT):
                data = self._read_cache()
                cached = self._cached(data, set(job_ids), age_limit, queue_view)
                if cached is not None:
                    return cached
                return self._query(sorted(set(job_ids)), since, queue_view, data)
        except StateError as exc:  # another process's query is still running
            return Answer(None, time.time(), f"{exc.message}; waiting for it")

    def _cached(
        self, data: dict[str, Any], wanted: set[str], age_limit: float, queue_view: bool
    ) -> Optional[Answer]:
        if not data:
            return None
        at, now = float(data["at"]), time.time()
        stands = float(data.get("pace") or 0.0)
        if data.get("error") is not None:
            if now - at < max(age_limit, stands):
                return Answer(None, at, str(data["error"]), cached=True, pace=stands)
            return None
        if now - at >= max(age_limit, stands):
            return None
        if queue_view and data.get("mode") != "user":
            return None
        result = slurm.parse_squeue(str(data.get("stdout", "")))
        if not pollplan.covers(data.get("job_ids", []), result, wanted):
            return None
        return Answer(result, at, cached=True, pace=stands)

    def _query(
        self, wanted: list[str], since: Optional[str], queue_view: bool, data: dict[str, Any]
    ) -> Answer:
        at = time.time()
        last = slurm.parse_squeue(str(data.get("stdout", ""))) if data.get("stdout") else None
        tracked = pollplan.carry_tracked(data.get("tracked") or {}, wanted, last, at)
        sinces = pollplan.carry_since(data.get("since") or {}, tracked, wanted, since)
        ids = sorted(tracked)
        version = self.version()
        start = time.monotonic()
        try:
            result = self.scheduler.query(
                ids, user=self.user, version=version, queue_view=queue_view or not ids
            )
        except SchedulerError as exc:
            failures = int(data.get("failures") or 0) + 1
            stands = pollplan.backoff(failures, self.min_interval, self.max_backoff)
            kept: dict[str, Any] = {
                k: data[k] for k in ("stdout", "mode", "acct_wanted", "acct_off") if k in data
            }
            self._write(
                {
                    **kept,
                    "at": at,
                    "error": exc.message,
                    "failures": failures,
                    "pace": stands,
                    "job_ids": ids,
                    "tracked": tracked,
                    "since": sinces,
                }
            )
            log.warning("scheduler query failed (%d in a row): %s", failures, exc.message)
            return Answer(None, at, exc.message, pace=stands)
        took = time.monotonic() - start
        stands = pollplan.pace(took, self.min_interval)
        if stands > self.min_interval:
            log.warning("squeue took %.1f s; the next query waits %.0f s", took, stands)
        ended = pollplan.transitions(last, result, ids)
        earliest = min(sinces.values()) if sinces else since
        acct_wanted, acct_off = self._account(ended, data, earliest, version, at)
        self._write(
            {
                "at": at,
                "took": round(took, 3),
                "pace": stands,
                "source": result.source,
                "mode": "user" if queue_view or not ids else "jobs",
                "stdout": pollplan.unparse_squeue(result),
                "job_ids": ids,
                "tracked": tracked,
                "since": sinces,
                "acct_wanted": acct_wanted,
                "acct_off": acct_off,
            }
        )
        return Answer(result, at, pace=stands)

    # ------------------------------------------------------------ accounting

    def _accounting_on(self) -> bool:
        limits = self.cached_limits()
        return True if limits is None else limits.accounting

    def _account(
        self,
        ended: set[str],
        data: dict[str, Any],
        since: Optional[str],
        version: str,
        at: float,
    ) -> tuple[dict[str, float], float]:
        """sacct about the tasks that ended (and those it did not report ended yet).

        Returns the tasks still waiting for figures and until when sacct rests."""
        off = float(data.get("acct_off") or 0.0)
        limits = self.cached_limits()
        if limits is not None and not limits.accounting:
            return {}, off
        wanted = {
            k: float(t)
            for k, t in (data.get("acct_wanted") or {}).items()
            if at - float(t) < pollplan.ACCT_PATIENCE
        }
        wanted.update({k: at for k in ended if k not in wanted})
        if not wanted or at < off:
            return wanted, off
        try:
            result = self.scheduler.accounting(
                pollplan.sacct_ids(wanted), since=since, version=version
            )
        except AccountingUnavailable as exc:
            log.warning("%s; asked again in %.0f s", exc.message, ACCOUNTING_RETRY)
            return wanted, at + ACCOUNTING_RETRY
        if result.disabled:
            return {}, self._remember_no_accounting(at)
        write_handoff(self.cache_dir, result)
        done = {a.job_id for a in result.tasks if a.state.terminal}
        return {k: t for k, t in wanted.items() if k not in done}, 0.0

    def awaiting_figures(self) -> set[str]:
        """Job ids with ended tasks sacct has not reported on yet (the shared query keeps
        asking about them, so the figures arrive; no lock, a stale read is harmless)."""
        wanted = self._read_cache().get("acct_wanted") or {}
        now = time.time()
        return {
            pollplan.job_of(k) for k, t in wanted.items() if now - float(t) < pollplan.ACCT_PATIENCE
        }

    def accounting(self, keys: Sequence[str], *, since: Optional[str] = None) -> AccountingResult:
        """sacct about these tasks (``"123_4"``/``"123"``) now, under the poll lock; the
        figures also go to the hand-off files.  For tasks no poll cycle saw end."""
        self.ensure()
        with locked(self.lock_file, timeout=LOCK_WAIT):
            result = self.scheduler.accounting(
                pollplan.sacct_ids(keys), since=since, version=self.version()
            )
            if result.disabled:
                self._remember_no_accounting(time.time())
            else:
                write_handoff(self.cache_dir, result)
            return result

    def _remember_no_accounting(self, at: float) -> float:
        """sacct said accounting is disabled: stop asking it (until limits are read again,
        or for an hour); returns until when."""
        limits = self.cached_limits()
        if limits is not None:
            self._write_limits(ClusterLimits(**{**limits.__dict__, "accounting": False}))
        return at + LIMITS_TTL

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.cache_file, json.dumps(data), mode=0o600)
