"""The Slurm command-line backend: the pure builders/parsers of
:mod:`hpcbridge.scheduler.slurm`, run through :mod:`hpcbridge.runner`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Optional

from hpcbridge import runner
from hpcbridge.errors import CommandError, CommandTimeout, SchedulerError, SchedulerUnavailable
from hpcbridge.scheduler import sacct, slurm, versions
from hpcbridge.scheduler.base import (
    AccountingResult,
    AccountingUnavailable,
    ClusterLimits,
    QueryResult,
    QueryTimedOut,
    Submitted,
    SubmitUnconfirmed,
    TrialRun,
)

log = logging.getLogger(__name__)

# A query that has not answered by then is given up (a throttled Slurm client
# sleeps 1, 2, 3 ... s between tries, silently and for ever).
QUERY_TIMEOUT = 60.0
# sbatch is given longer: killing it may leave a job whose id nobody learnt.
SUBMIT_TIMEOUT = 300.0


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


class SlurmCLI:
    """Talks to Slurm through ``sbatch``, ``squeue``, ``sacct``, ``scontrol``, ``scancel``."""

    name = "cli"

    def __init__(self, cluster: Optional[str] = None) -> None:
        self.cluster = cluster or None

    def _run(
        self, argv: Sequence[str], *, cwd: Optional[Path] = None, timeout: float = QUERY_TIMEOUT
    ) -> runner.Completed:
        try:
            done = runner.run(argv, check=False, cwd=cwd, timeout=timeout)
        except CommandTimeout:
            raise QueryTimedOut(
                f"{argv[0]} did not answer within {timeout:g} s (the Slurm controller is busy "
                "or rate-limiting this user)",
                "hpcbridge backs off and asks again later",
            ) from None
        if done.returncode != 0:
            detail = _last_line(done.stderr) or _last_line(done.stdout)
            if slurm.is_unreachable(done.stderr):
                raise SchedulerUnavailable(
                    f"the Slurm controller cannot be reached ({argv[0]}: {detail})",
                    "try again later; `--retry N` retries with backoff",
                )
        return done

    def version(self) -> str:
        """``squeue --version`` (local: no RPC), e.g. ``slurm-wlm 26.05.5``; "" if it fails."""
        try:
            done = runner.run(versions.version_argv(), check=False, timeout=30)
        except CommandError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    def submit(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> Submitted:
        argv = slurm.sbatch_argv(str(script), extra_args=extra_args, cluster=self.cluster)
        try:
            done = self._run(argv, cwd=cwd, timeout=SUBMIT_TIMEOUT)
        except QueryTimedOut as exc:
            raise SubmitUnconfirmed(
                f"sbatch {script.name} did not answer within {SUBMIT_TIMEOUT:g} s; "
                "the job may or may not have been queued",
                "`hpcbridge status` finds it by its comment and records it; do not submit again",
            ) from exc
        if done.returncode != 0:
            raise SchedulerError(
                f"sbatch refused {script.name}: {_last_line(done.stderr) or done.returncode}",
                "check the job's resources against the partition's limits",
            )
        return slurm.parse_sbatch(done.stdout)

    def test_only(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> TrialRun:
        argv = slurm.sbatch_test_argv(str(script), extra_args=extra_args, cluster=self.cluster)
        done = self._run(argv, cwd=cwd)
        return TrialRun(done.returncode, done.stdout, done.stderr)

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        version: str = "",
        queue_view: bool = False,
    ) -> QueryResult:
        """ONE squeue call: the given jobs (``--only-job-state`` where the release has it),
        or with ``queue_view`` (or no ids) every job of the user, comments included."""
        if job_ids and not queue_view:
            only = versions.has_only_job_state(version)
            argv = slurm.squeue_jobs_argv(job_ids, only_job_state=only, cluster=self.cluster)
        else:
            argv = slurm.squeue_argv(user=user, cluster=self.cluster)
        done = self._run(argv)
        if done.returncode != 0:
            if slurm.unknown_job(done.stderr):
                return QueryResult("squeue", ())  # the one job asked about is gone
            raise SchedulerError(f"squeue failed: {_last_line(done.stderr)}")
        return slurm.parse_squeue(done.stdout)

    def accounting(
        self, job_ids: Sequence[str], *, since: Optional[str] = None, version: str = ""
    ) -> AccountingResult:
        """ONE ``sacct -P`` call for the jobs / array tasks (asks slurmdbd, not slurmctld)."""
        argv = sacct.accounting_argv(job_ids, since=since, version=version, cluster=self.cluster)
        try:
            done = runner.run(argv, check=False, timeout=QUERY_TIMEOUT)
        except CommandTimeout:
            raise AccountingUnavailable(
                f"sacct did not answer within {QUERY_TIMEOUT:g} s", "asked again later"
            ) from None
        text = done.stdout + done.stderr
        if slurm.accounting_disabled(text):
            return AccountingResult((), disabled=True)
        if done.returncode != 0:
            raise AccountingUnavailable(
                f"sacct failed: {_last_line(done.stderr) or done.returncode}",
                "the figures are asked for again later",
            )
        return sacct.parse_accounting(done.stdout, sacct.accounting_fields(version))

    def limits(self, user: Optional[str] = None) -> ClusterLimits:
        done = self._run(slurm.scontrol_config_argv(self.cluster))
        if done.returncode != 0:
            raise SchedulerError(f"scontrol show config failed: {_last_line(done.stderr)}")
        limits = slurm.parse_scontrol_config(done.stdout)
        if limits.accounting and user:
            try:
                acct = self._run(slurm.sacctmgr_limits_argv(user))
            except SchedulerUnavailable as exc:
                log.warning("per-user limits unknown: %s", exc)
                return limits
            if acct.returncode == 0:
                limits = replace(limits, max_submit_jobs=slurm.parse_sacctmgr_limits(acct.stdout))
        return limits

    def cancel(self, job_ids: Sequence[str]) -> None:
        done = self._run(slurm.scancel_argv(job_ids, self.cluster))
        if done.returncode != 0:
            raise SchedulerError(f"scancel failed: {_last_line(done.stderr)}")
