"""The report of a submission and its resubmissions, from its attempts (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from hpcbridge.report.attempt import Attempt
from hpcbridge.report.sizing import Suggestion, latest_by_task, suggest_mem, suggest_time
from hpcbridge.report.stats import Summary, summarise


@dataclass(frozen=True)
class Report:
    """Everything ``hpcbridge report`` shows (JSON form: :mod:`.jsonout`)."""

    id: str
    name: str
    submissions: tuple[str, ...]  # the submission, then its resubmissions (oldest first)
    attempts: tuple[Attempt, ...]  # by task, then attempt
    summary: Summary
    memory: Suggestion
    time: Suggestion
    accounting: str  # "sacct", or why there is none ("disabled", "unreachable: ...")
    generated_at: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tasks(self) -> int:
        return len({a.task for a in self.attempts})

    def latest(self) -> dict[int, Attempt]:
        return latest_by_task(self.attempts)

    def states(self) -> dict[str, int]:
        """Counts per state of each task's latest attempt."""
        counts: dict[str, int] = {}
        for a in self.latest().values():
            counts[a.state.value] = counts.get(a.state.value, 0) + 1
        return dict(sorted(counts.items()))


def build_report(
    sub_id: str,
    name: str,
    submissions: Sequence[str],
    attempts: Sequence[Attempt],
    *,
    accounting: str,
    generated_at: float,
    notes: Sequence[str] = (),
) -> Report:
    ordered = tuple(sorted(attempts, key=lambda a: (a.task, a.attempt)))
    return Report(
        id=sub_id,
        name=name,
        submissions=tuple(submissions),
        attempts=ordered,
        summary=summarise(ordered),
        memory=suggest_mem(ordered),
        time=suggest_time(ordered),
        accounting=accounting,
        generated_at=generated_at,
        notes=tuple(notes),
    )


def unknown_note(report: Report) -> Optional[str]:
    """One line on the figures nobody measured (None when all are known)."""
    u = report.summary.unknown
    parts = [f"{n} without {what.replace('_', ' ')}" for what, n in u.items() if n]
    if not parts:
        return None
    return "unknown, not estimated: " + ", ".join(parts) + " (of the attempts that ran)"
