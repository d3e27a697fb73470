"""Slurm releases and what each one's clients can do (pure).

The version comes from ``squeue --version`` (``slurm 22.05.8``, ``slurm-wlm
26.05.5``): a local call that sends no RPC to slurmctld, so it costs nothing
against a per-user rate limit.  The poller asks once and keeps the answer in
the shared poll cache.
"""

from __future__ import annotations

import re
from typing import Optional

# ``squeue --only-job-state`` (the cheap REQUEST_JOB_STATE RPC) exists from 23.11.5.
ONLY_JOB_STATE = (23, 11, 5)
# sacct's SLUID field (a per-run job identifier) exists from 26.05.
SLUID = (26, 5, 0)


def parse_version(text: str) -> Optional[tuple[int, int, int]]:
    """``"slurm-wlm 26.05.5"`` / ``"slurm 22.05.8"`` / ``"23.11"`` -> (26, 5, 5) ..."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def at_least(version: str, wanted: tuple[int, int, int]) -> bool:
    """Is ``version`` (any spelling :func:`parse_version` reads) ``wanted`` or newer?"""
    have = parse_version(version)
    return have is not None and have >= wanted


def has_only_job_state(version: str) -> bool:
    return at_least(version, ONLY_JOB_STATE)


def has_sluid(version: str) -> bool:
    return at_least(version, SLUID)


def version_argv() -> list[str]:
    return ["squeue", "--version"]
