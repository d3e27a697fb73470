"""Batch scheduler access behind one protocol (:class:`~hpcbridge.scheduler.base.Scheduler`).

Backends: ``cli`` (default; Slurm's command-line clients through
:mod:`hpcbridge.runner`) and ``pyslurm`` (only when pyslurm is importable and was
built for the running Slurm version; see :mod:`hpcbridge.scheduler.slurm_pyslurm`).
"""

from __future__ import annotations

from typing import Optional

from hpcbridge.scheduler.base import ClusterLimits, JobInfo, QueryResult, Scheduler, Submitted
from hpcbridge.scheduler.states import JobState, map_state

__all__ = [
    "ClusterLimits",
    "JobInfo",
    "JobState",
    "QueryResult",
    "Scheduler",
    "Submitted",
    "get_scheduler",
    "map_state",
]


def get_scheduler(backend: str = "cli", cluster: Optional[str] = None) -> Scheduler:
    """The scheduler backend named by ``scheduler.backend`` in the configuration."""
    if backend == "pyslurm":
        from hpcbridge.scheduler.slurm_pyslurm import PySlurm

        return PySlurm(cluster)
    from hpcbridge.scheduler.slurm_cli import SlurmCLI

    return SlurmCLI(cluster)
