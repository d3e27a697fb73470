"""What a task needs: suggested requests and resubmission sizes from measured figures (pure).

The rules (docs/report.md says the same):

* **suggestion** (``report``, ``rerun --right-size``): the p99 (nearest rank) of
  the measured peak memory, and of the elapsed time, over the tasks' latest
  *completed* runs, plus a margin (:data:`MEM_MARGIN`, :data:`TIME_MARGIN`),
  rounded up (:func:`round_mem`, :func:`round_time`).  A task whose own need is
  above it is an *outlier*; ``rerun --right-size`` gives it its own size.
* **after OUT_OF_MEMORY**: the measured peak plus :data:`MEM_MARGIN` when it is
  clearly above the request (a sampled limit saw the task get that far); when it
  is not (a memory cgroup stops a task at its limit, so the peak says only "more
  than this") or nothing measured it, the request plus :data:`CAPPED_MARGIN`.
* **after TIMEOUT**: the measured elapsed time (a lower bound: the task was
  stopped) times :data:`TIMEOUT_FACTOR`; unknown elapsed: the limit times that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from hpcbridge.report.attempt import MIB, Attempt
from hpcbridge.report.stats import percentile
from hpcbridge.slurm_syntax import format_indices, format_mem, format_time

PERCENTILE = 99
MEM_MARGIN = 0.20  # over a measured peak
CAPPED_MARGIN = 0.50  # over a peak that hit the limit (a lower bound only)
TIME_MARGIN = 0.20  # over a measured elapsed time
TIMEOUT_FACTOR = 2.0  # over the elapsed time of a task stopped at its limit
MIN_MEM = 32  # MiB
MIN_TIME = 60  # s


def round_mem(mib: float) -> int:
    """Up to a multiple of 1/8 of the power of two below (12.5 % steps), at least 32 MiB:
    300 -> 320, 370 -> 384, 1100 -> 1152."""
    if mib <= MIN_MEM:
        return MIN_MEM
    step = 2 ** (math.floor(math.log2(mib)) - 3)
    return int(math.ceil(mib / step - 1e-9) * step)


def round_time(seconds: float) -> int:
    """Up to a whole minute (a whole 5 minutes from one hour on), at least a minute."""
    step = 60 if seconds < 3600 else 300
    return max(MIN_TIME, int(math.ceil(seconds / step - 1e-9) * step))


def mib_text(nbytes: Optional[float]) -> str:
    if nbytes is None:
        return "unknown"
    mib = nbytes / MIB
    return f"{mib / 1024:.1f} GiB" if mib >= 10240 else f"{mib:.0f} MiB"


def amount(v: Optional[float]) -> str:
    """Hours (core-hours, GiB-hours) to a readable precision: small ones stay visible."""
    if v is None:
        return "unknown"
    if v == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4f}" if abs(v) < 0.01 else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")


def secs_text(seconds: Optional[float]) -> str:
    return "unknown" if seconds is None else format_time(round(seconds))


@dataclass(frozen=True)
class Need:
    """One task's size, and why."""

    task: int
    value: int  # MiB (memory) or seconds (time)
    why: str


def _asked_mem(a: Attempt) -> str:
    return "no --mem" if a.req_mem is None else f"--mem {format_mem(-(-a.req_mem // MIB))}"


def after_oom(a: Attempt) -> Optional[Need]:
    """The memory to resubmit a task with that ran out of memory (None: nothing to go by)."""
    if a.peak_mem is None:
        if a.req_mem is None:
            return None
        value = round_mem(a.req_mem / MIB * (1 + CAPPED_MARGIN))
        return Need(a.task, value, f"peak unknown: +{CAPPED_MARGIN:.0%} of its {_asked_mem(a)}")
    src = f"{a.peak_source} peak {mib_text(a.peak_mem)}"
    if a.above_request:
        value = round_mem(a.peak_mem / MIB * (1 + MEM_MARGIN))
        return Need(a.task, value, f"{src} measured ({_asked_mem(a)}): peak + {MEM_MARGIN:.0%}")
    base = max(a.peak_mem, a.req_mem or 0)
    value = round_mem(base / MIB * (1 + CAPPED_MARGIN))
    why = (
        f"{src} is not above its {_asked_mem(a)} (a memory limit stops a task there), "
        f"so its need is unknown: {mib_text(base)} + {CAPPED_MARGIN:.0%}"
    )
    return Need(a.task, value, why)


def after_timeout(a: Attempt, limit: Optional[int]) -> Optional[Need]:
    """The time limit to resubmit a task with that ran into its limit."""
    if a.elapsed is None:
        if limit is None:
            return None
        value = round_time(limit * TIMEOUT_FACTOR)
        return Need(a.task, value, f"elapsed unknown: {TIMEOUT_FACTOR:g} x its {secs_text(limit)}")
    base = max(a.elapsed, float(limit or 0))
    value = round_time(base * TIMEOUT_FACTOR)
    why = (
        f"stopped after {secs_text(a.elapsed)} (limit {secs_text(limit)}), so its need is "
        f"unknown: {TIMEOUT_FACTOR:g} x the elapsed time"
    )
    return Need(a.task, value, why)


@dataclass(frozen=True)
class Suggestion:
    """A request that would have fitted the measured tasks, and what it would have saved."""

    resource: str  # "mem" (values in MiB) or "time" (seconds)
    current: Optional[int]  # what most tasks asked for (None: nothing asked / unknown)
    value: Optional[int]  # the suggestion (None: nothing measured)
    basis: str  # how it was computed, or why there is none
    samples: int  # measured completed tasks it stands on
    outliers: tuple[Need, ...] = ()  # tasks that need more than ``value``
    saved: Optional[float] = None  # GiB-hours (mem) or core-hours (time) less reserved
    reserved: Optional[float] = None  # ... reserved as asked, for comparison

    def text(self, value: Optional[int]) -> str:
        if value is None:
            return "-"
        return format_mem(value) if self.resource == "mem" else format_time(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "current": self.current,
            "current_text": self.text(self.current),
            "value": self.value,
            "value_text": self.text(self.value),
            "unit": "MiB" if self.resource == "mem" else "s",
            "basis": self.basis,
            "samples": self.samples,
            "outliers": [{"task": o.task, "value": o.value, "why": o.why} for o in self.outliers],
            "saved": self.saved,
            "reserved": self.reserved,
            "saved_unit": "GiB-hours" if self.resource == "mem" else "core-hours",
        }


def latest_by_task(attempts: Iterable[Attempt]) -> dict[int, Attempt]:
    """Each task's latest attempt (the highest attempt number)."""
    out: dict[int, Attempt] = {}
    for a in attempts:
        if a.task not in out or a.attempt > out[a.task].attempt:
            out[a.task] = a
    return out


def _completed(attempts: Sequence[Attempt]) -> dict[int, Attempt]:
    return latest_by_task(a for a in attempts if a.completed)


def _mode(values: Iterable[Optional[int]]) -> Optional[int]:
    counts: dict[int, int] = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda v: (counts[v], v)) if counts else None


def suggest_mem(attempts: Sequence[Attempt]) -> Suggestion:
    done = _completed(attempts)
    latest = latest_by_task(attempts)
    current_b = _mode(a.req_mem for a in latest.values())
    current = None if current_b is None else -(-current_b // MIB)
    peaks = {t: a.peak_mem for t, a in done.items() if a.peak_mem is not None}
    if not peaks:
        return Suggestion("mem", current, None, "no completed task has a measured peak", 0)
    p = percentile(sorted(peaks.values()), PERCENTILE)
    value = round_mem(p / MIB * (1 + MEM_MARGIN))
    basis = (
        f"p{PERCENTILE} of {len(peaks)} measured peaks ({mib_text(p)}) + {MEM_MARGIN:.0%}, "
        "rounded up"
    )
    outliers = [
        Need(t, need, f"measured peak {mib_text(b)} + {MEM_MARGIN:.0%}")
        for t, b in sorted(peaks.items())
        if (need := round_mem(b / MIB * (1 + MEM_MARGIN))) > value
    ]
    for t, a in sorted(latest.items()):
        if t not in done and a.state.value == "OUT_OF_MEMORY":
            oom = after_oom(a)
            if oom is not None and oom.value > value:
                outliers.append(oom)
    saved, reserved = _mem_saving(done.values(), value)
    return Suggestion("mem", current, value, basis, len(peaks), tuple(outliers), saved, reserved)


def _mem_saving(done: Iterable[Attempt], value: int) -> tuple[Optional[float], Optional[float]]:
    """GiB-hours of memory reservation (request x elapsed) saved over the completed runs."""
    rows = [(a.req_mem, a.elapsed) for a in done]
    if not rows or any(m is None or e is None for m, e in rows):
        return None, None
    gib_h = 1024 * MIB * 3600.0
    reserved = sum(float(m or 0) * float(e or 0) for m, e in rows) / gib_h
    fitted = sum(value * MIB * float(e or 0) for _, e in rows) / gib_h
    return reserved - fitted, reserved


def suggest_time(attempts: Sequence[Attempt]) -> Suggestion:
    done = _completed(attempts)
    latest = latest_by_task(attempts)
    current = _mode(a.req_time for a in latest.values())
    used = {t: a.elapsed for t, a in done.items() if a.elapsed is not None}
    if not used:
        return Suggestion("time", current, None, "no completed task has a measured time", 0)
    p = percentile(sorted(used.values()), PERCENTILE)
    value = round_time(p * (1 + TIME_MARGIN))
    basis = (
        f"p{PERCENTILE} of {len(used)} elapsed times ({secs_text(p)}) + {TIME_MARGIN:.0%}, "
        "rounded up"
    )
    outliers = [
        Need(t, need, f"measured {secs_text(e)} + {TIME_MARGIN:.0%}")
        for t, e in sorted(used.items())
        if (need := round_time(e * (1 + TIME_MARGIN))) > value
    ]
    for t, a in sorted(latest.items()):
        if t not in done and a.state.value == "TIMEOUT":
            late = after_timeout(a, a.req_time)
            if late is not None and late.value > value:
                outliers.append(late)
    rows = [(a.req_time, a.cpus or 1) for a in done.values()]
    saved = reserved = None
    if rows and all(r is not None for r, _ in rows):
        reserved = sum(float(r or 0) * c for r, c in rows) / 3600.0
        saved = reserved - sum(float(value) * c for _, c in rows) / 3600.0
    return Suggestion("time", current, value, basis, len(used), tuple(outliers), saved, reserved)


def sized_groups(
    tasks: Iterable[int], mem: Suggestion, time: Suggestion
) -> dict[tuple[Optional[int], Optional[int]], list[int]]:
    """``rerun --right-size``: (MiB, seconds) -> tasks; outliers get their own size, a
    resource without a suggestion keeps the job's own request (None)."""
    own_mem: Mapping[int, int] = {o.task: o.value for o in mem.outliers}
    own_time: Mapping[int, int] = {o.task: o.value for o in time.outliers}
    groups: dict[tuple[Optional[int], Optional[int]], list[int]] = {}
    for t in sorted(set(tasks)):
        key = (own_mem.get(t, mem.value), own_time.get(t, time.value))
        groups.setdefault(key, []).append(t)
    return groups


def outlier_text(s: Suggestion) -> str:
    return format_indices(o.task for o in s.outliers)
