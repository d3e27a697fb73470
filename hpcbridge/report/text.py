"""The terminal form of a report: summary, failures, suggestions, a runtime histogram and a
compact table of tasks, every line at most :data:`WIDTH` columns (pure)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Callable, Optional

from hpcbridge.report.attempt import Attempt
from hpcbridge.report.build import Report, unknown_note
from hpcbridge.report.sizing import Suggestion, amount, mib_text
from hpcbridge.report.stats import Distribution
from hpcbridge.slurm_syntax import format_indices

WIDTH = 80
BAR = 46  # histogram bar width
ROWS = 20  # task rows shown without --all
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def short_time(seconds: Optional[float]) -> str:
    """``45s``, ``12m05s``, ``3h20m``, ``2d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _mem(v: Optional[float]) -> str:
    return "-" if v is None else mib_text(v)


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.0%}"


def _wrap(text: str, indent: str, first: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first or indent, subsequent_indent=indent) or [
        first.rstrip()
    ]


def _dist_row(label: str, d: Distribution, fmt: Callable[[Optional[float]], str]) -> str:
    cells = [fmt(v) for v in (d.min, d.median, d.p95, d.max)]
    return f"  {label:<18}" + "".join(f"{c:>11}" for c in cells) + f"  ({d.n})"


def summary_lines(r: Report) -> list[str]:
    s = r.summary
    states = ", ".join(f"{n} {k.lower()}" for k, n in r.states().items())
    lines = [
        f"report {r.id}  {r.name}"[:WIDTH],
        *_wrap(
            f"{r.tasks} task(s), {s.attempts} finished attempt(s) in {len(r.submissions)} "
            f"submission(s); accounting: {r.accounting}",
            "  ",
        ),
        *_wrap(f"latest attempts: {states or 'none'}", "  "),
        "",
        f"  {'':<18}{'min':>11}{'median':>11}{'p95':>11}{'max':>11}  (n)",
        _dist_row("memory used", s.mem_used, _mem),
        _dist_row("memory asked", s.mem_requested, _mem),
        _dist_row("used / asked", s.mem_ratio, _pct),
        _dist_row("elapsed", s.time_used, short_time),
        _dist_row("time limit", s.time_requested, short_time),
        _dist_row("elapsed / limit", s.time_ratio, _pct),
        _dist_row("CPU efficiency", s.cpu_efficiency, _pct),
        "",
    ]

    lines += _wrap(
        f"core-hours: {amount(s.core_hours)} held, {amount(s.wasted_core_hours)} by attempts that did "
        f"not complete, {amount(s.idle_core_hours)} idle (held, no CPU time)",
        "    ",
        "  ",
    )
    note = unknown_note(r)
    if note:
        lines += _wrap(note, "    ", "  ")
    return lines


def failure_lines(r: Report) -> list[str]:
    fails = r.summary.failures
    if not fails:
        return ["failures: none"]
    lines = ["failures by reason:"]
    for f in fails:
        hours = "" if f.core_hours is None else f"  {amount(f.core_hours)} core-h"
        tasks = format_indices(f.tasks)
        head = f"  {f.reason[:30]:<30} {f.attempts:>5} x{hours}  tasks "
        lines += _wrap(tasks, " " * 6, head)
    return lines


def _suggestion_lines(label: str, s: Suggestion) -> list[str]:
    if s.value is None:
        return _wrap(f"{label}: no suggestion: {s.basis}", "    ", "  ")
    lines = _wrap(f"{label}: {s.text(s.current)} -> {s.text(s.value)}  ({s.basis})", "    ", "  ")
    unit = "GiB-hours of memory" if s.resource == "mem" else "core-hours of time limit"
    if s.saved is not None and s.reserved is not None:
        verb = "saves" if s.saved >= 0 else "costs"
        lines += _wrap(
            f"{verb} {amount(abs(s.saved))} of {amount(s.reserved)} {unit} reserved by the "
            "completed tasks",
            "    ",
            "    ",
        )
    for o in s.outliers[:5]:
        lines += _wrap(f"task {o.task} needs {s.text(o.value)}: {o.why}", "      ", "    ")
    if len(s.outliers) > 5:
        lines.append(f"    ... {len(s.outliers) - 5} more task(s) need more (see --json)")
    return lines


def suggestion_lines(r: Report) -> list[str]:
    return [
        "suggestions (hpcbridge rerun ID --right-size applies them):",
        *_suggestion_lines("memory", r.memory),
        *_suggestion_lines("time", r.time),
    ]


def histogram_lines(values: Sequence[float], *, bins: int = 12) -> list[str]:
    """A text histogram of runtimes: at most ``bins`` rows of round width, 80 columns."""
    if not values:
        return ["runtime histogram: no finished attempt has a known elapsed time"]
    lo, hi = min(values), max(values)
    width = next((s for s in _STEPS if (hi - math.floor(lo / s) * s) / s < bins), _STEPS[-1])
    start = math.floor(lo / width) * width
    n = max(1, min(bins, int((hi - start) // width) + 1))
    counts = [0] * n
    for v in values:
        counts[min(n - 1, int((v - start) // width))] += 1
    top = max(counts)
    lines = [f"runtime histogram ({len(values)} finished attempts, elapsed):"]
    for i, c in enumerate(counts):
        a, b = start + i * width, start + (i + 1) * width
        bar = "#" * (round(c / top * BAR) if c else 0)
        if c and not bar:
            bar = "."
        lines.append(f"  {short_time(a):>6} - {short_time(b):<6} |{bar:<{BAR}} {c:>6}")
    return lines


def _row(a: Attempt) -> str:
    cells = (
        f"{a.task:>6}",
        f"{a.attempt:>2}",
        f"{a.state.value[:13]:<13}",
        f"{(a.node or '-')[:8]:<8}",
        f"{short_time(a.elapsed):>7}",
        f"{short_time(a.cpu_time):>7}",
        f"{_mem(a.peak_mem):>9}",
    )
    line = " ".join(cells)
    return f"{line} {a.reason}"[:WIDTH].rstrip()


def chosen_rows(r: Report, show_all: bool) -> tuple[list[Attempt], int]:
    """The attempts to list: all, or the ones worth a look (failed, largest, longest)."""
    if show_all or len(r.attempts) <= ROWS:
        return list(r.attempts), 0
    pick: dict[tuple[int, int], Attempt] = {}
    for a in r.attempts:
        if not a.completed:
            pick[(a.task, a.attempt)] = a
    done = [a for a in r.attempts if a.completed]
    for key in (lambda a: a.peak_mem or 0, lambda a: a.elapsed or 0):
        for a in sorted(done, key=key, reverse=True)[:3]:
            pick[(a.task, a.attempt)] = a
    rows = [pick[k] for k in sorted(pick)][:ROWS]
    return rows, len(r.attempts) - len(rows)


def table_lines(r: Report, show_all: bool = False) -> list[str]:
    rows, hidden = chosen_rows(r, show_all)
    title = "tasks:" if not hidden else "tasks (not completed, then the 3 largest and longest):"
    head = f"{'task':>6} {'#':>2} {'state':<13} {'node':<8} {'elapsed':>7} {'cpu':>7} {'peak':>9} reason"
    lines = [title, head, *(_row(a) for a in rows)]
    if hidden:
        lines.append(f"  ... {hidden} more attempt(s): --all lists every one")
    return lines


def report_lines(r: Report, *, show_all: bool = False) -> list[str]:
    elapsed = [a.elapsed for a in r.attempts if a.finished and a.elapsed is not None]
    return [
        *summary_lines(r),
        "",
        *failure_lines(r),
        "",
        *suggestion_lines(r),
        "",
        *histogram_lines(elapsed),
        "",
        *table_lines(r, show_all),
        *(line for n in r.notes for line in _wrap(n, "  ", "note: ")),
    ]
