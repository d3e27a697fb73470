"""Scheduler job states: one enum, one table from Slurm's names to it.

An unknown Slurm state becomes :attr:`JobState.UNKNOWN` with a warning, never an
exception: one odd answer must not turn every job into a failure.
"""

from __future__ import annotations

import enum
import logging
import re

log = logging.getLogger(__name__)


class JobState(str, enum.Enum):
    """The state of one task (array element) or job, as hpcbridge reports it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        """The task will not change state any more (by itself)."""
        return self in TERMINAL

    @property
    def failed(self) -> bool:
        """A terminal state other than success: what ``resubmit --failed`` reruns."""
        return self in TERMINAL and self is not JobState.COMPLETED


TERMINAL = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
    }
)

# States whose cause only the scheduler knows (the task's own outcome file cannot
# tell a time-out or an out-of-memory kill from any other signal).
REASON_STATES = frozenset(
    {
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
    }
)

# Slurm's long and compact state names (squeue %T / %t, sacct State) -> JobState.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "PD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "R": JobState.RUNNING,
    "CONFIGURING": JobState.RUNNING,
    "CF": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "CG": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SI": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SO": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "RS": JobState.RUNNING,
    "SUSPENDED": JobState.SUSPENDED,
    "S": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "ST": JobState.SUSPENDED,
    "REQUEUED": JobState.REQUEUED,
    "RQ": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "RF": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "RH": JobState.REQUEUED,
    "COMPLETED": JobState.COMPLETED,
    "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "F": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "SE": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "CA": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "RV": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "TO": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "OOM": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "NF": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "PR": JobState.PREEMPTED,
    "BOOT_FAIL": JobState.BOOT_FAIL,
    "BF": JobState.BOOT_FAIL,
    "DEADLINE": JobState.DEADLINE,
    "DL": JobState.DEADLINE,
}

_BY_SUFFIX = re.compile(r"\s+by\s+\d+$")  # sacct: "CANCELLED by 1000"
_warned: set[str] = set()


def map_state(raw: str) -> JobState:
    """Map a Slurm state name (any of its spellings) to :class:`JobState`.

    ``"CANCELLED by 1000"`` and ``"CANCELLED+"`` are understood; anything not in
    the table is UNKNOWN, with one warning per distinct name.
    """
    name = _BY_SUFFIX.sub("", raw.strip()).rstrip("+").upper()
    state = SLURM_STATES.get(name)
    if state is None:
        if name not in _warned:
            _warned.add(name)
            log.warning("unknown Slurm job state %r, reported as UNKNOWN", raw)
        return JobState.UNKNOWN
    return state
