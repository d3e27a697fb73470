"""Distributions, failures by reason and core-hours over attempts (pure).

Every distribution is taken over the finished attempts whose figure is known;
``n`` says how many that is, so "median over 3 of 200 tasks" cannot pass for a
fact about all of them.  Percentiles are nearest-rank (the value of a real
task, never interpolated between two).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from hpcbridge.report.attempt import Attempt
from hpcbridge.slurm_syntax import format_indices


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of an ascending, non-empty sequence."""
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Distribution:
    """min, median, p95, max of ``n`` known values (all None when ``n`` is 0)."""

    n: int
    min: Optional[float] = None
    median: Optional[float] = None
    p95: Optional[float] = None
    max: Optional[float] = None

    @classmethod
    def of(cls, values: Iterable[Optional[float]]) -> Distribution:
        known = sorted(v for v in values if v is not None)
        if not known:
            return cls(0)
        return cls(len(known), known[0], percentile(known, 50), percentile(known, 95), known[-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "min": self.min,
            "median": self.median,
            "p95": self.p95,
            "max": self.max,
        }


@dataclass(frozen=True)
class Failure:
    """Attempts that did not complete, grouped by why."""

    reason: str  # "OUT_OF_MEMORY", "TIMEOUT", "FAILED: exit code 3" ...
    state: str
    attempts: int
    tasks: tuple[int, ...]
    core_hours: Optional[float]  # what they held, when every one's figures are known

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "state": self.state,
            "attempts": self.attempts,
            "tasks": format_indices(self.tasks),
            "core_hours": self.core_hours,
        }


@dataclass(frozen=True)
class Summary:
    """Requested vs used, failures and core-hours of a report's finished attempts."""

    attempts: int  # finished attempts the figures are taken over
    mem_used: Distribution  # bytes
    mem_requested: Distribution
    mem_ratio: Distribution  # used / requested, per attempt
    time_used: Distribution  # seconds (elapsed)
    time_requested: Distribution
    time_ratio: Distribution
    cpu_efficiency: Distribution  # CPU time / (elapsed x CPUs)
    failures: tuple[Failure, ...]
    core_hours: Optional[float]  # elapsed x CPUs of every finished attempt (None: unknown)
    wasted_core_hours: Optional[float]  # ... of the attempts that did not complete
    idle_core_hours: Optional[float]  # held but unused: elapsed x CPUs - CPU time
    unknown: dict[str, int]  # finished attempts lacking a figure: peak_mem, cpu_time ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "memory": {
                "used_bytes": self.mem_used.to_dict(),
                "requested_bytes": self.mem_requested.to_dict(),
                "used_fraction": self.mem_ratio.to_dict(),
            },
            "time": {
                "used_s": self.time_used.to_dict(),
                "requested_s": self.time_requested.to_dict(),
                "used_fraction": self.time_ratio.to_dict(),
            },
            "cpu_efficiency": self.cpu_efficiency.to_dict(),
            "failures": [f.to_dict() for f in self.failures],
            "core_hours": self.core_hours,
            "wasted_core_hours": self.wasted_core_hours,
            "idle_core_hours": self.idle_core_hours,
            "unknown": dict(self.unknown),
        }


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def failure_reason(a: Attempt) -> str:
    """The group a failed attempt falls in: its state, and for FAILED the exit code/signal."""
    if a.state.value != "FAILED":
        return a.state.value
    if a.reason.startswith(("exit code", "killed by signal")):
        return f"FAILED: {a.reason}"
    if a.exit_code is not None:
        return f"FAILED: exit code {a.exit_code}"
    return "FAILED: no exit code"


def _hours(values: Sequence[Optional[float]]) -> Optional[float]:
    """Sum in hours (0 of nothing); None when any is unknown (a partial sum would understate it)."""
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / 3600.0


def failures(attempts: Sequence[Attempt]) -> tuple[Failure, ...]:
    groups: dict[str, list[Attempt]] = {}
    for a in attempts:
        if a.finished and not a.completed:
            groups.setdefault(failure_reason(a), []).append(a)
    out = [
        Failure(
            reason,
            group[0].state.value,
            len(group),
            tuple(sorted({a.task for a in group})),
            _hours([a.core_seconds for a in group if ran(a)]),
        )
        for reason, group in groups.items()
    ]
    return tuple(sorted(out, key=lambda f: (-f.attempts, f.reason)))


def ran(a: Attempt) -> bool:
    """The attempt started (a task that never started held nothing: 0 core-hours)."""
    return a.start is not None or (a.elapsed is not None and a.elapsed > 0)


def _idle(a: Attempt) -> Optional[float]:
    held = a.core_seconds
    if held is None or a.cpu_time is None:
        return None
    return max(0.0, held - a.cpu_time)


def summarise(attempts: Sequence[Attempt]) -> Summary:
    """The summary over the finished attempts (pending and running ones are left out)."""
    done = [a for a in attempts if a.finished]

    def dist(fn: Callable[[Attempt], Optional[float]]) -> Distribution:
        return Distribution.of(fn(a) for a in done)

    started = [a for a in done if ran(a)]
    unknown = {
        "peak_mem": sum(1 for a in started if a.peak_mem is None),
        "cpu_time": sum(1 for a in started if a.cpu_time is None),
        "elapsed": sum(1 for a in started if a.elapsed is None),
        "node": sum(1 for a in started if a.node is None),
    }
    return Summary(
        attempts=len(done),
        mem_used=dist(lambda a: a.peak_mem),
        mem_requested=dist(lambda a: a.req_mem),
        mem_ratio=dist(lambda a: _ratio(a.peak_mem, a.req_mem)),
        time_used=dist(lambda a: a.elapsed),
        time_requested=dist(lambda a: a.req_time),
        time_ratio=dist(lambda a: _ratio(a.elapsed, a.req_time)),
        cpu_efficiency=dist(lambda a: a.cpu_efficiency),
        failures=failures(done),
        core_hours=_hours([a.core_seconds for a in started]),
        wasted_core_hours=_hours([a.core_seconds for a in started if not a.completed]),
        idle_core_hours=_hours([_idle(a) for a in started]),
        unknown=unknown,
    )
