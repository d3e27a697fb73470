"""Doctor findings: one line each, ok / warn / fail, with one line of fix."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Status(enum.IntEnum):
    """Ordered by severity; the process exit status is the worst one's value."""

    OK = 0
    WARN = 1
    FAIL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    check: str  # short id: runtime, userns, fuse, cache-dir, tmp-dir, bind, job, gpu, mpi, slurm
    status: Status
    message: str
    fix: str = ""  # one line; empty for ok findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.label,
            "message": self.message,
            "fix": self.fix,
        }


def ok(check: str, message: str) -> Finding:
    return Finding(check, Status.OK, message)


def warn(check: str, message: str, fix: str) -> Finding:
    return Finding(check, Status.WARN, message, fix)


def fail(check: str, message: str, fix: str) -> Finding:
    return Finding(check, Status.FAIL, message, fix)


def worst(findings: Iterable[Finding]) -> Status:
    return max((f.status for f in findings), default=Status.OK)


def report_dict(findings: Iterable[Finding]) -> dict[str, Any]:
    """The ``--json`` document: ``{"status": worst, "findings": [...]}``."""
    items = list(findings)
    return {"status": worst(items).label, "findings": [f.to_dict() for f in items]}
