"""The Slurm command-line backend: the pure builders/parsers of
:mod:`hpcbridge.scheduler.slurm`, run through :mod:`hpcbridge.runner`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Optional

from hpcbridge import runner
from hpcbridge.errors import SchedulerError, SchedulerUnavailable
from hpcbridge.scheduler import slurm
from hpcbridge.scheduler.base import (
    AccountingUnavailable,
    ClusterLimits,
    QueryResult,
    Submitted,
    TrialRun,
)

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 120.0


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


class SlurmCLI:
    """Talks to Slurm through ``sbatch``, ``squeue``, ``sacct``, ``scontrol``, ``scancel``."""

    name = "cli"

    def __init__(self, cluster: Optional[str] = None) -> None:
        self.cluster = cluster or None

    def _run(self, argv: Sequence[str], *, cwd: Optional[Path] = None) -> runner.Completed:
        done = runner.run(argv, check=False, cwd=cwd, timeout=QUERY_TIMEOUT)
        if done.returncode != 0:
            detail = _last_line(done.stderr) or _last_line(done.stdout)
            if slurm.is_unreachable(done.stderr):
                raise SchedulerUnavailable(
                    f"the Slurm controller cannot be reached ({argv[0]}: {detail})",
                    "try again later; `--retry N` retries with backoff",
                )
        return done

    def submit(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> Submitted:
        argv = slurm.sbatch_argv(str(script), extra_args=extra_args, cluster=self.cluster)
        done = self._run(argv, cwd=cwd)
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
        accounting: bool,
        since: Optional[str] = None,
    ) -> QueryResult:
        """ONE call: ``sacct`` for the jobs when accounting is on, else ``squeue`` for the user.

        If sacct turns out to be disabled the answer comes from squeue instead
        (``result.source`` says which).
        """
        if accounting and job_ids:
            argv = slurm.sacct_argv(job_ids, since=since, cluster=self.cluster)
            done = runner.run(argv, check=False, timeout=QUERY_TIMEOUT)
            text = done.stdout + done.stderr
            if done.returncode == 0 and not slurm.accounting_disabled(text):
                return slurm.parse_sacct(done.stdout)
            if not slurm.accounting_disabled(text):
                # slurmdbd down or restarting: say so (ONE query per cycle; the
                # caller uses squeue for the next cycles)
                raise AccountingUnavailable(
                    f"sacct failed: {_last_line(done.stderr) or done.returncode}",
                    "squeue is used instead for a while",
                )
            log.info("accounting is disabled; asking squeue")
        argv = slurm.squeue_argv(user=user, cluster=self.cluster)
        if not user:
            argv = slurm.squeue_argv(job_ids=job_ids, cluster=self.cluster)
        done = self._run(argv)
        if done.returncode != 0:
            raise SchedulerError(f"squeue failed: {_last_line(done.stderr)}")
        return slurm.parse_squeue(done.stdout)

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
