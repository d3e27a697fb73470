"""Slurm command lines and their parsers, paired and pure (no I/O).

Each ``*_argv`` function builds the argv of one Slurm client call; the matching
``parse_*`` function turns its captured output into plain values.  Parsers never
raise on an odd line: a malformed line is skipped and reported in the result's
``warnings`` (and logged), an unknown state becomes ``UNKNOWN``.

Facts these follow (Slurm 22.05): ``squeue --json`` ignores ``-j/-t/-u`` and
reports raw wait statuses, so ``squeue -h -o`` with a ``|``-separated format is
used; without slurmdbd ``sacct`` answers "Slurm accounting storage is disabled"
(:func:`accounting_disabled`).  Task states come from squeue; sacct's per-task
figures (``sacct -P`` text: ``sacct --json`` reports exit code 0 for failed
jobs) are asked for and parsed in :mod:`hpcbridge.scheduler.sacct`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Optional

from hpcbridge.scheduler.base import ClusterLimits, JobInfo, QueryResult, Submitted
from hpcbridge.scheduler.states import map_state
from hpcbridge.slurm_syntax import parse_indices

log = logging.getLogger(__name__)

# Comment last: it is free text and may itself contain the separator.
SQUEUE_FORMAT = "%i|%A|%F|%K|%T|%r|%k"
ACCOUNTING_DISABLED = "accounting storage is disabled"

_UNREACHABLE = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "slurmctld is not responding",
    "unable to establish connection",
    "connection timed out",
    "could not establish a configuration source",
    "slurm_persist_conn_open",
    "slurmdbd",
    "zero bytes were transmitted or received",
    "unable to query jobs state",  # 26.05 squeue --only-job-state, controller down
    "rate limit exceeded",  # SLURMCTLD_COMMUNICATIONS_BACKOFF, should a client ever print it
)


def is_unreachable(stderr: str) -> bool:
    """Does a client's error output say the controller (or slurmdbd) cannot be reached?"""
    low = stderr.lower()
    return any(marker in low for marker in _UNREACHABLE)


def _cluster_args(cluster: Optional[str]) -> list[str]:
    return ["-M", cluster] if cluster else []


def parse_exit_code(text: str) -> tuple[Optional[int], Optional[int]]:
    """Slurm's ``"3:0"`` (exit code : signal) -> (3, 0); anything else -> (None, None)."""
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- sbatch


def sbatch_argv(
    script: str, *, extra_args: Sequence[str] = (), cluster: Optional[str] = None
) -> list[str]:
    """``sbatch --parsable [extra] SCRIPT``; extra options override the script's #SBATCH lines."""
    return ["sbatch", "--parsable", *_cluster_args(cluster), *extra_args, script]


def sbatch_test_argv(
    script: str, *, extra_args: Sequence[str] = (), cluster: Optional[str] = None
) -> list[str]:
    """``sbatch --test-only [extra] SCRIPT``: when and where it would run; nothing is queued."""
    test = [] if "--test-only" in extra_args else ["--test-only"]
    return ["sbatch", *test, *_cluster_args(cluster), *extra_args, script]


def parse_sbatch(stdout: str) -> Submitted:
    """``--parsable`` prints ``<job id>[;<cluster>]``; stray lines before it are ignored."""
    for line in reversed(stdout.strip().splitlines()):
        m = re.fullmatch(r"\s*(\d+)(?:;(\S+))?\s*", line)
        if m:
            return Submitted(m.group(1), m.group(2))
    from hpcbridge.errors import SchedulerError

    raise SchedulerError(
        f"sbatch answered no job id: {stdout.strip()[:200]!r}",
        "check the script with `sbatch --test-only`",
    )


# ---------------------------------------------------------------- squeue


def squeue_argv(
    *,
    user: Optional[str] = None,
    job_ids: Sequence[str] = (),
    cluster: Optional[str] = None,
) -> list[str]:
    """One call for every tracked job: by user (``-t all`` keeps recently ended jobs) or ids."""
    argv = ["squeue", "-h", *_cluster_args(cluster), "-t", "all", "-o", SQUEUE_FORMAT]
    if user:
        argv += ["-u", user]
    if job_ids:
        argv += ["-j", ",".join(job_ids)]
    return argv


def squeue_jobs_argv(
    job_ids: Sequence[str], *, only_job_state: bool, cluster: Optional[str] = None
) -> list[str]:
    """The tracked jobs in one call, finished ones included (``-t all``).

    ``only_job_state`` (Slurm >= 23.11.5): the REQUEST_JOB_STATE RPC, one token of
    a per-user rate limit; it fills in job id, array ids and state (``%r`` is
    ``None``, ``%k`` ``(null)``) and gives an empty answer for unknown ids.
    Plain ``squeue -j`` (older releases) asks REQUEST_JOB_INFO.
    """
    only = ["--only-job-state"] if only_job_state else []
    return [
        "squeue",
        *only,
        "-h",
        *_cluster_args(cluster),
        "-t",
        "all",
        "-o",
        SQUEUE_FORMAT,
        "-j",
        ",".join(job_ids),
    ]


def unknown_job(stderr: str) -> bool:
    """squeue -j of ONE purged job fails ("Invalid job id specified"); several give exit 0."""
    return "invalid job id specified" in stderr.lower()


def parse_squeue(stdout: str) -> QueryResult:
    """Parse ``squeue -h -o '%i|%A|%F|%K|%T|%r|%k'`` output."""
    jobs: list[JobInfo] = []
    warnings: list[str] = []
    for line in stdout.splitlines():
        if not line.strip() or line.startswith("CLUSTER:"):
            continue
        parts = line.split("|", 6)
        if len(parts) < 6 or not parts[1].strip().isdigit():
            warnings.append(f"squeue: skipped malformed line {line[:120]!r}")
            continue
        _jobid, raw_id, array_id, task, raw_state, reason = (p.strip() for p in parts[:6])
        comment = parts[6].strip() if len(parts) > 6 else ""
        task_ids: Optional[tuple[int, ...]] = None
        job_id = raw_id
        if task not in ("N/A", "") and array_id.isdigit():
            task_ids = parse_indices(task)
            if task_ids is None:
                warnings.append(f"squeue: skipped line with bad task ids {line[:120]!r}")
                continue
            job_id = array_id
        jobs.append(
            JobInfo(
                job_id=job_id,
                task_ids=task_ids,
                state=map_state(raw_state),
                raw_state=raw_state,
                reason="" if reason == "None" else reason,
                comment="" if comment == "(null)" else comment,
            )
        )
    for w in warnings:
        log.warning("%s", w)
    return QueryResult("squeue", tuple(jobs), tuple(warnings))


# ---------------------------------------------------------------- sacct


def accounting_disabled(output: str) -> bool:
    """Does sacct's output say the cluster keeps no accounting (no slurmdbd)?"""
    return ACCOUNTING_DISABLED in output.lower()


# ---------------------------------------------------------------- scontrol / sacctmgr


def scontrol_config_argv(cluster: Optional[str] = None) -> list[str]:
    return ["scontrol", *_cluster_args(cluster), "show", "config"]


def parse_scontrol_config(stdout: str) -> ClusterLimits:
    """Read MaxArraySize, MaxJobCount, MinJobAge, AccountingStorageType and the version."""
    raw: dict[str, str] = {}
    for line in stdout.splitlines():
        if " = " in line:
            key, _, value = line.partition(" = ")
            raw[key.strip()] = value.strip()

    def num(key: str, default: int) -> int:
        text = raw.get(key, "").split()[0] if raw.get(key) else ""
        return int(text) if text.isdigit() else default

    storage = raw.get("AccountingStorageType", "accounting_storage/none")
    return ClusterLimits(
        max_array_size=num("MaxArraySize", 1001),
        max_job_count=num("MaxJobCount", 10000),
        min_job_age=num("MinJobAge", 300),
        accounting=storage.strip() not in ("", "accounting_storage/none", "(null)"),
        slurm_version=raw.get("SLURM_VERSION", ""),
        cluster_name=raw.get("ClusterName", ""),
        raw=raw,
    )


def sacctmgr_limits_argv(user: str) -> list[str]:
    return [
        "sacctmgr",
        "-n",
        "-P",
        "show",
        "assoc",
        f"user={user}",
        "format=User,Account,Partition,MaxSubmit,MaxJobs",
    ]


def parse_sacctmgr_limits(stdout: str) -> Optional[int]:
    """The smallest MaxSubmit over the user's associations, or None (no limit)."""
    limits: list[int] = []
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 4 and parts[3].strip().isdigit():
            limits.append(int(parts[3].strip()))
    return min(limits) if limits else None


def scancel_argv(job_ids: Sequence[str], cluster: Optional[str] = None) -> list[str]:
    """``scancel`` of whole jobs or single tasks (``123_4``)."""
    return ["scancel", *_cluster_args(cluster), *job_ids]
