"""Human-readable text for status, watch and list (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def failure_text(f: Mapping[str, Any]) -> str:
    bits = [f"task {f['task']}: {f['state'].lower()}"]
    if f.get("exit_code") is not None:
        bits.append(f"exit code {f['exit_code']}")
    if f.get("reason") and not str(f["reason"]).startswith("exit code"):
        bits.append(str(f["reason"]))
    if f.get("job_id"):
        bits.append(f"job {f['job_id']}")
    return ", ".join(bits)


def status_lines(s: Mapping[str, Any], *, detail: bool = True) -> list[str]:
    """The text of one submission's ``status``."""
    jobs = ",".join(str(j) for j in s.get("job_ids", []) if j) or "-"
    head = f"{s['id']}  {s.get('name') or ''}  {s['total']} task(s): {counts_text(s['counts'])}"
    lines = [head.rstrip()]
    extra = [f"jobs {jobs}"]
    if s.get("parent"):
        extra.append(f"{s.get('kind', 'resubmit')} of {s['parent']}")
    if s.get("state") not in (None, "submitted"):
        extra.append(f"record: {s['state']}")
    lines.append("  " + "; ".join(extra))
    if s.get("error"):
        lines.append(f"  error: {s['error']}")
    if s.get("scheduler_error"):
        lines.append(f"  scheduler not reachable: {s['scheduler_error']}")
    if detail and s["failed"]:
        lines.append(f"  failed tasks: {s['failed_tasks']}")
        for f in s["failed"][:MAX_FAILED_LINES]:
            lines.append("    " + failure_text(f))
        if len(s["failed"]) > MAX_FAILED_LINES:
            lines.append(f"    ... and {len(s['failed']) - MAX_FAILED_LINES} more (see --json)")
    latest = s.get("latest")
    if latest:
        lines.append(
            f"  after resubmission(s) {', '.join(s.get('children', []))}: "
            f"{counts_text(latest['counts'])}"
        )
    return lines


def progress_line(s: Mapping[str, Any], width: int = 30) -> str:
    """``<id> [#####.....] 512/1000 finished (3 failed) 40 running 445 pending``."""
    view = s.get("latest") or s
    counts = view["counts"]
    total = max(int(s["total"]), 1)
    done = int(view["finished"])
    ok = int(counts.get("COMPLETED", 0))
    bad = done - ok
    fill_ok = int(width * ok / total)
    fill_bad = int(width * done / total) - fill_ok
    bar = "#" * fill_ok + "!" * fill_bad + "." * (width - fill_ok - fill_bad)
    text = f"{s['id']} [{bar}] {done}/{s['total']} finished"
    if bad:
        text += f" ({bad} failed)"
    for key in ("RUNNING", "PENDING", "UNKNOWN"):
        if counts.get(key):
            text += f", {counts[key]} {key.lower()}"
    return text


def list_line(r: Mapping[str, Any]) -> str:
    snap = (r.get("snapshot") or {}).get("counts") or {}
    jobs = ",".join(str(c.get("job_id")) for c in r.get("chunks", []) if c.get("job_id")) or "-"
    parent = f" ({r.get('kind')} of {r['parent']})" if r.get("parent") else ""
    return (
        f"{r['id']}  {r.get('submitted_at') or r.get('created_at') or '':20}  "
        f"{r.get('name') or '':16} {r.get('state', ''):9} jobs {jobs:12} "
        f"{counts_text(snap) or '-'}{parent}"
    )
