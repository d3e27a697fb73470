"""Synthetic attempts for the report's unit tests (no tests here)."""

from __future__ import annotations

import random
from typing import Any, Optional

from hpcbridge.report.attempt import MIB, Attempt
from hpcbridge.report.build import Report, build_report
from hpcbridge.scheduler.states import JobState

T0 = 1_800_000_000.0


def attempt(task: int, state: str = "COMPLETED", **kw: Any) -> Attempt:
    values: dict[str, Any] = {
        "submission": "20260101-000000-aaaaaa",
        "attempt": 1,
        "job_id": f"100_{task}",
        "node": "n1",
        "start": T0,
        "end": T0 + 60,
        "elapsed": 60.0,
        "cpu_time": 30.0,
        "peak_mem": 100 * MIB,
        "peak_source": "sacct",
        "cpu_source": "sacct",
        "req_mem": 256 * MIB,
        "req_time": 600,
        "cpus": 1,
        "exit_code": 0 if state == "COMPLETED" else None,
    }
    values.update(kw)
    return Attempt(task=task, state=JobState(state), **values)


def story(n: int = 200, *, seed: int = 7, oom_task: Optional[int] = 7) -> list[Attempt]:
    """``n`` tasks with varied time and memory, a few exit-code failures, one task out of
    memory at its 256M limit that a resubmission then completed with 300 MiB."""
    rng = random.Random(seed)
    out = []
    for t in range(n):
        start = T0 + rng.uniform(0, 120)
        elapsed = rng.uniform(5, 90)
        kw: dict[str, Any] = {
            "node": f"n{t % 2 + 1}",
            "start": start,
            "end": start + elapsed,
            "elapsed": elapsed,
            "cpu_time": elapsed * rng.uniform(0.2, 0.95),
            "peak_mem": int(rng.uniform(20, 120) * MIB),
        }
        if t == oom_task:
            out.append(
                attempt(t, "OUT_OF_MEMORY", reason="OutOfMemory", **{**kw, "peak_mem": 256 * MIB})
            )
            again = {
                **kw,
                "start": T0 + 400,
                "end": T0 + 430,
                "elapsed": 30.0,
                "req_mem": 384 * MIB,
            }
            out.append(
                attempt(
                    t,
                    submission="20260101-000500-bbbbbb",
                    attempt=2,
                    job_id="200_7",
                    **{**again, "peak_mem": 300 * MIB},
                )
            )
        elif t % 50 == 3:
            out.append(attempt(t, "FAILED", reason=f"exit code {t % 7}", exit_code=t % 7, **kw))
        else:
            out.append(attempt(t, **kw))
    return out


def report_of(attempts: list[Attempt], accounting: str = "sacct") -> Report:
    subs = sorted({a.submission for a in attempts}) or ["20260101-000000-aaaaaa"]
    return build_report(
        subs[0], "story", subs, attempts, accounting=accounting, generated_at=T0 + 999
    )
