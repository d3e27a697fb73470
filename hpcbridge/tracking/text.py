"""Human-readable text for status, watch and list (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcbridge.tracking.record import Record
    from hpcbridge.tracking.summary import SubmissionStatus, TaskStatus
    from hpcbridge.tracking.watch import WatchSnapshot

ORDER = (
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "CANCELLED",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "RUNNING",
    "PENDING",
    "SUSPENDED",
    "REQUEUED",
    "UNKNOWN",
)
MAX_FAILED_LINES = 20


def counts_text(counts: Mapping[str, int]) -> str:
    keys = [k for k in ORDER if k in counts] + sorted(k for k in counts if k not in ORDER)
    return ", ".join(f"{counts[k]} {k.lower()}" for k in keys)


def failure_text(f: TaskStatus) -> str:
    bits = [f"task {f.task}: {f.state.value.lower()}"]
    if f.exit_code is not None:
        bits.append(f"exit code {f.exit_code}")
    if f.reason and not f.reason.startswith("exit code"):
        bits.append(f.reason)
    if f.job_id:
        bits.append(f"job {f.job_id}")
    return ", ".join(bits)


def status_lines(s: SubmissionStatus, *, detail: bool = True) -> list[str]:
    """The text of one submission's ``status``."""
    r, p = s.record, s.progress
    jobs = ",".join(r.job_ids()) or "-"
    head = f"{r.id}  {r.name}  {p.total} task(s): {counts_text(p.counts)}"
    lines = [head.rstrip()]
    extra = [f"jobs {jobs}"]
    if r.parent:
        extra.append(f"{r.kind or 'resubmit'} of {r.parent}")
    if r.state != "submitted":
        extra.append(f"record: {r.state}")
    lines.append("  " + "; ".join(extra))
    if r.error:
        lines.append(f"  error: {r.error}")
    if s.scheduler_error:
        lines.append(f"  scheduler not reachable: {s.scheduler_error}")
    if detail and p.failed:
        lines.append(f"  failed tasks: {p.failed_tasks}")
        for f in p.failed[:MAX_FAILED_LINES]:
            lines.append("    " + failure_text(f))
        if len(p.failed) > MAX_FAILED_LINES:
            lines.append(f"    ... and {len(p.failed) - MAX_FAILED_LINES} more (see --json)")
    if s.latest is not None:
        lines.append(
            f"  after resubmission(s) {', '.join(s.children)}: {counts_text(s.latest.counts)}"
        )
    return lines


def progress_line(s: SubmissionStatus, width: int = 30) -> str:
    """``<id> [#####.....] 512/1000 finished (3 failed) 40 running 445 pending``."""
    view = s.view
    counts = view.counts
    total = max(s.progress.total, 1)
    done = view.finished
    ok = counts.get("COMPLETED", 0)
    bad = done - ok
    fill_ok = int(width * ok / total)
    fill_bad = int(width * done / total) - fill_ok
    bar = "#" * fill_ok + "!" * fill_bad + "." * (width - fill_ok - fill_bad)
    text = f"{s.id} [{bar}] {done}/{s.progress.total} finished"
    if bad:
        text += f" ({bad} failed)"
    for key in ("RUNNING", "PENDING", "UNKNOWN"):
        if counts.get(key):
            text += f", {counts[key]} {key.lower()}"
    return text


def watch_lines(snapshot: WatchSnapshot) -> list[str]:
    """One progress line per submission, and the scheduler's trouble if any."""
    lines = [progress_line(s) for s in snapshot.submissions]
    if snapshot.scheduler_error:
        lines.append(
            f"scheduler not reachable ({snapshot.scheduler_error}); "
            f"retrying in {snapshot.next_poll:g} s"
        )
    return lines


def list_line(r: Record) -> str:
    counts = r.snapshot.counts if r.snapshot is not None else {}
    jobs = ",".join(r.job_ids()) or "-"
    parent = f" ({r.kind} of {r.parent})" if r.parent else ""
    return (
        f"{r.id}  {r.submitted_at or r.created_at or '':20}  "
        f"{r.name:16} {r.state:9} jobs {jobs:12} "
        f"{counts_text(counts) or '-'}{parent}"
    )


def list_row(r: Record) -> dict[str, Any]:
    """One submission of ``list --json``."""
    return {
        "id": r.id,
        "name": r.name,
        "kind": r.kind,
        "parent": r.parent,
        "children": list(r.children),
        "state": r.state,
        "submitted_at": r.submitted_at,
        "snapshot": dataclasses.asdict(r.snapshot) if r.snapshot is not None else None,
        "job_ids": [c.job_id for c in r.chunks],
        "tasks": r.tasks,
    }
