"""The report's figures, drawn with matplotlib (the optional extra ``hpcbridge[report]``) as
PNG bytes for the HTML page.

matplotlib is imported only here and only when a figure is drawn (about 0.2 s and
170 MB installed with numpy: too much to force on every login node), through its
object API (``Figure``, no pyplot state, no display needed).  Without it the
HTML report fails with one line naming the extra; the terminal and JSON forms
never need it.
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpcbridge.errors import EnvironmentProblem
from hpcbridge.report.attempt import MIB, Attempt
from hpcbridge.report.build import Report
from hpcbridge.report.sizing import latest_by_task

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
COLORS = {
    "COMPLETED": "#4c9a2a",
    "FAILED": "#d62728",
    "OUT_OF_MEMORY": "#9467bd",
    "TIMEOUT": "#ff7f0e",
    "CANCELLED": "#7f7f7f",
    "RUNNING": "#1f77b4",
}
OTHER = "#8c564b"


def color(state: str) -> str:
    return COLORS.get(state, OTHER)


def _figure(width: float, height: float, *, left: float = 1.0) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EnvironmentProblem(
            "the HTML report needs matplotlib, which is not installed",
            "pip install 'hpcbridge[report]' (the text and --json reports work without it)",
        ) from None
    fig = Figure(figsize=(width, height), dpi=DPI)
    # fixed margins in inches (a layout engine would draw every figure twice)
    fig.subplots_adjust(
        left=left / width, right=1 - 2.3 / width, bottom=0.55 / height, top=1 - 0.35 / height
    )
    return fig


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555")
    ax.set_xticks([])
    ax.set_yticks([])


def runtime_histogram(report: Report) -> bytes:
    """Elapsed time of the finished attempts, completed and not completed stacked."""
    fig = _figure(9, 3.2)
    ax = fig.add_subplot()
    done = [a for a in report.attempts if a.finished and a.elapsed is not None]
    if not done:
        _empty(ax, "no finished attempt has a known elapsed time")
        return png(fig)
    minutes = max(a.elapsed or 0 for a in done) >= 300
    scale, unit = (60.0, "minutes") if minutes else (1.0, "seconds")
    ok = [(a.elapsed or 0) / scale for a in done if a.completed]
    bad = [(a.elapsed or 0) / scale for a in done if not a.completed]
    top = max(ok + bad)
    # whole seconds (the outcome files' clock) get a bar each; longer runs 40 bins
    bins: Any = list(range(int(top) + 2)) if scale == 1.0 and top <= 120 else 40
    ax.hist(
        [ok, bad],
        bins=bins,
        stacked=True,
        color=[color("COMPLETED"), color("FAILED")],
        label=[f"completed ({len(ok)})", f"did not complete ({len(bad)})"],
    )
    if report.time.value is not None:
        ax.axvline(report.time.value / scale, color="#333", ls="--", lw=1, label="suggested limit")
    ax.set_xlabel(f"elapsed ({unit})")
    ax.set_ylabel("attempts")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("Runtime of the finished attempts")
    return png(fig)


def memory_used_vs_requested(report: Report) -> bytes:
    """Each task's peak (latest attempt) against its request, with the suggestion."""
    fig = _figure(9, 3.6)
    ax = fig.add_subplot()
    latest = [a for a in latest_by_task(report.attempts).values() if a.peak_mem is not None]
    if not latest:
        _empty(ax, "no attempt has a measured peak memory (see the notes)")
        return png(fig)
    by_state: dict[str, list[Attempt]] = {}
    for a in latest:
        by_state.setdefault(a.state.value, []).append(a)
    small = 2 if len(latest) > 500 else 3.5
    for state, group in sorted(by_state.items(), key=lambda kv: kv[0] != "COMPLETED"):
        ax.plot(  # markers of one Line2D: much cheaper than scatter for 10,000 points
            [a.task for a in group],
            [(a.peak_mem or 0) / MIB for a in group],
            ls="",
            marker="o",
            ms=small if state == "COMPLETED" else 6,  # the few that failed stand out
            zorder=2 if state == "COMPLETED" else 3,
            color=color(state),
            label=f"{state.lower()} ({len(group)})",
        )
    req = sorted((a.task, a.req_mem / MIB) for a in latest if a.req_mem is not None)
    if req:
        ax.step(
            [t for t, _ in req],
            [m for _, m in req],
            where="mid",
            color="#333",
            lw=1.2,
            label="requested",
        )
    if report.memory.value is not None:
        ax.axhline(report.memory.value, color="#1f77b4", ls="--", lw=1, label="suggested")
    ax.set_xlabel("task")
    ax.set_ylabel("memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("Peak memory of each task's latest attempt vs its request")
    return png(fig)


def lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """A lane for each (start, end) so that spans in one lane never overlap (interval
    partitioning in start order, fewest lanes): concurrent tasks are drawn one above the other."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    free: list[tuple[float, int]] = []  # (end, lane) of the lanes in use, soonest free first
    out = [0] * len(spans)
    count = 0
    for i in order:
        start, end = spans[i]
        if free and free[0][0] <= start:
            _, lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        heapq.heappush(free, (end, lane))
        out[i] = lane
    return out


def timeline(report: Report) -> bytes:
    """When each attempt ran, one band per node (a lane per concurrent task), by state."""
    ran = [a for a in report.attempts if a.start is not None and a.node]
    nodes = sorted({a.node or "" for a in ran})
    fig = _figure(9, max(2.0, 1.0 + 0.6 * len(nodes)))
    ax = fig.add_subplot()
    if not ran:
        _empty(ax, "no attempt has a known start and node")
        return png(fig)
    t0 = min(a.start or 0.0 for a in ran)
    last = max((a.end or a.start or t0) for a in ran)
    scale, unit = (60.0, "minutes") if last - t0 >= 600 else (1.0, "seconds")
    # one collection of rectangles per state: 10,000 bars stay cheap to draw
    from matplotlib.collections import PolyCollection

    boxes: dict[str, list[list[tuple[float, float]]]] = {}
    for y, node in enumerate(nodes):
        mine = [a for a in ran if a.node == node]
        spans = [((a.start or t0) - t0, (a.end or last) - t0) for a in mine]
        lane = lanes(spans)
        height = 0.8 / (max(lane) + 1)
        for a, (start, end), k in zip(mine, spans, lane):
            x0, x1 = start / scale, start / scale + max(end - start, 0.5) / scale
            y0 = y - 0.4 + k * height
            y1 = y0 + height
            boxes.setdefault(a.state.value, []).append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    for state, verts in sorted(boxes.items()):
        ax.add_collection(PolyCollection(verts, facecolors=color(state), linewidths=0))
        ax.bar(0, 0, color=color(state), label=f"{state.lower()} ({len(verts)})")
    ax.set_xlim(0, (last - t0) / scale * 1.02 + 1e-9)
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_ylim(-0.5, len(nodes) - 0.5)
    ax.set_xlabel(f"{unit} since the first task started")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title("Tasks per node over time (one lane per task running at once)")
    return png(fig)


def failures_by_reason(report: Report) -> bytes:
    fails = report.summary.failures
    longest = max((len(f.reason) for f in fails), default=0)
    fig = _figure(9, max(1.8, 0.8 + 0.4 * len(fails)), left=min(4.0, 0.4 + 0.075 * longest))
    ax = fig.add_subplot()
    if not fails:
        _empty(ax, "every finished attempt completed")
        return png(fig)
    labels = [f.reason for f in reversed(fails)]
    counts = [f.attempts for f in reversed(fails)]
    bars = ax.barh(labels, counts, color=[color(f.state) for f in reversed(fails)])
    ax.bar_label(bars, padding=3)
    from matplotlib.ticker import MaxNLocator  # after _figure: matplotlib is there

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("attempts")
    ax.set_xlim(right=max(counts) * 1.15)
    ax.set_title("Attempts that did not complete, by reason")
    return png(fig)


FIGURES: Sequence[tuple[str, str, Any]] = (
    (
        "runtime",
        "Elapsed time of every finished attempt (completed and not); the dashed line is the "
        "suggested time limit.",
        runtime_histogram,
    ),
    (
        "memory",
        "Peak memory of each task's latest attempt, coloured by its state, against what it "
        "asked for (solid) and the suggested request (dashed).",
        memory_used_vs_requested,
    ),
    (
        "timeline",
        "When each attempt ran on each node: one thin lane per task running at the same time, "
        "coloured by state.",
        timeline,
    ),
    (
        "failures",
        "Attempts that did not complete, by state and, for FAILED, exit code or signal.",
        failures_by_reason,
    ),
)
