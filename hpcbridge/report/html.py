"""``hpcbridge report --html FILE``: one self-contained page (pure: text in, text out).

No script, no stylesheet or font from elsewhere, figures as inline PNG
(``data:`` URIs): the file opens the same offline, from a mail attachment or a
shared directory.  The figures come from :mod:`.plots` (matplotlib).
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from typing import Optional

from hpcbridge.report.attempt import Attempt
from hpcbridge.report.build import Report, unknown_note
from hpcbridge.report.sizing import Suggestion, amount, mib_text
from hpcbridge.report.stats import Distribution
from hpcbridge.report.text import chosen_rows, short_time
from hpcbridge.slurm_syntax import format_indices

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;
max-width:960px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;
border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;text-align:right;
border-bottom:1px solid #eee}th{background:#f4f4f4}td.l,th.l{text-align:left}
.meta{color:#555}.note{color:#7a4d00}figure{margin:.8em 0}img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
td.l{overflow-wrap:anywhere}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img(name: str, title: str, data: bytes) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure id="fig-{name}"><img class="plot" alt="{_e(title)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{_e(title)}</figcaption></figure>'
    )


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.0%}"


def _mem(v: Optional[float]) -> str:
    return "-" if v is None else mib_text(v)


def _dist(label: str, d: Distribution, fmt: object) -> str:
    f = fmt if callable(fmt) else str
    cells = "".join(f"<td>{_e(f(v))}</td>" for v in (d.min, d.median, d.p95, d.max))
    return f'<tr><th class="l">{_e(label)}</th>{cells}<td>{d.n}</td></tr>'


def summary_table(r: Report) -> str:
    s = r.summary
    rows = [
        _dist("memory used", s.mem_used, _mem),
        _dist("memory requested", s.mem_requested, _mem),
        _dist("used / requested", s.mem_ratio, _pct),
        _dist("elapsed", s.time_used, short_time),
        _dist("time limit", s.time_requested, short_time),
        _dist("elapsed / limit", s.time_ratio, _pct),
        _dist("CPU efficiency", s.cpu_efficiency, _pct),
    ]
    head = "<tr><th></th><th>min</th><th>median</th><th>p95</th><th>max</th><th>n</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _hours(v: Optional[float]) -> str:
    return amount(v)


def suggestion_block(label: str, s: Suggestion) -> str:
    if s.value is None:
        return f"<p><b>{_e(label)}</b>: no suggestion ({_e(s.basis)}).</p>"
    parts = [
        f"<p><b>{_e(label)}</b>: <code>{_e(s.text(s.current))}</code> &rarr; "
        f"<code>{_e(s.text(s.value))}</code> &mdash; {_e(s.basis)}."
    ]
    unit = "GiB-hours of memory" if s.resource == "mem" else "core-hours of time limit"
    if s.saved is not None and s.reserved is not None:
        verb = "Saves" if s.saved >= 0 else "Costs"
        parts.append(
            f" {verb} {amount(abs(s.saved))} of the {amount(s.reserved)} {unit} the completed tasks "
            "reserved."
        )
    parts.append("</p>")
    if s.outliers:
        rows = "".join(
            f'<tr><td>{o.task}</td><td>{_e(s.text(o.value))}</td><td class="l">{_e(o.why)}</td></tr>'
            for o in s.outliers[:50]
        )
        more = f"<p>... and {len(s.outliers) - 50} more.</p>" if len(s.outliers) > 50 else ""
        parts.append(
            f'<table><tr><th>task</th><th>needs</th><th class="l">why</th></tr>{rows}</table>{more}'
        )
    return "".join(parts)


def _attempt_row(a: Attempt) -> str:
    cells = [
        str(a.task),
        str(a.attempt),
        a.state.value,
        a.node or "-",
        short_time(a.elapsed),
        short_time(a.cpu_time),
        _mem(a.peak_mem),
        _mem(a.req_mem),
    ]
    tds = "".join(
        f'<td class="l">{_e(c)}</td>' if i in (2, 3) else f"<td>{_e(c)}</td>"
        for i, c in enumerate(cells)
    )
    return f'<tr>{tds}<td class="l">{_e(a.reason)}</td></tr>'


def tasks_table(r: Report) -> str:
    rows, hidden = chosen_rows(r, False)
    head = "".join(
        f'<th class="l">{h}</th>' if h in ("state", "node") else f"<th>{h}</th>"
        for h in ("task", "#", "state", "node", "elapsed", "CPU", "peak", "requested")
    )
    more = (
        f'<p class="meta">{hidden} more attempt(s): <code>hpcbridge report {_e(r.id)} '
        "--all</code> or <code>--json</code> lists every one.</p>"
        if hidden
        else ""
    )
    body = "".join(_attempt_row(a) for a in rows)
    return f'<table><tr>{head}<th class="l">reason</th></tr>{body}</table>{more}'


def _clip(text: str, width: int = 60) -> str:
    if len(text) <= width:
        return text
    cut = text.rfind(",", 0, width)
    return text[: cut if cut > 0 else width] + ", ..."


def failures_table(r: Report) -> str:
    if not r.summary.failures:
        return "<p>Every finished attempt completed.</p>"
    rows = "".join(
        f'<tr><td class="l">{_e(f.reason)}</td><td>{f.attempts}</td>'
        f'<td class="l">{_e(_clip(format_indices(f.tasks)))}</td>'
        f"<td>{_e(_hours(f.core_hours))}</td></tr>"
        for f in r.summary.failures
    )
    head = '<tr><th class="l">reason</th><th>attempts</th><th class="l">tasks</th><th>core-hours</th></tr>'
    return f"<table>{head}{rows}</table>"


def render_html(r: Report, figures: Sequence[tuple[str, str, bytes]]) -> str:
    """The page; ``figures``: (name, title, PNG bytes) from :mod:`.plots`."""
    by_name = {name: _img(name, title, data) for name, title, data in figures}
    s = r.summary
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.generated_at))
    states = ", ".join(f"{n} {k.lower()}" for k, n in r.states().items())
    notes = [*r.notes, *([unknown_note(r)] if unknown_note(r) else [])]
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            '<link rel="icon" href="data:,">',
            f"<title>hpcbridge report {_e(r.id)}</title><style>{STYLE}</style></head><body>",
            f"<h1>Report of {_e(r.id)} <small>{_e(r.name)}</small></h1>",
            f'<p class="meta">{r.tasks} task(s), {s.attempts} finished attempt(s) in '
            f"{len(r.submissions)} submission(s) ({_e(', '.join(r.submissions))}); "
            f"accounting: {_e(r.accounting)}; generated {_e(stamp)}.</p>",
            f"<p>Latest attempts: {_e(states or 'none')}.</p>",
            *(f'<p class="note">{_e(n)}</p>' for n in notes if n),
            "<h2>Suggestions</h2>",
            suggestion_block("Memory", r.memory),
            suggestion_block("Time limit", r.time),
            '<p class="meta"><code>hpcbridge rerun ID --right-size</code> applies them.</p>',
            "<h2>Requested vs used</h2>",
            summary_table(r),
            f"<p>Core-hours: {_hours(s.core_hours)} held, {_hours(s.wasted_core_hours)} by "
            f"attempts that did not complete, {_hours(s.idle_core_hours)} idle.</p>",
            by_name.get("memory", ""),
            by_name.get("runtime", ""),
            "<h2>Timeline</h2>",
            by_name.get("timeline", ""),
            "<h2>Failures by reason</h2>",
            by_name.get("failures", ""),
            failures_table(r),
            "<h2>Tasks</h2>",
            tasks_table(r),
            "</body></html>\n",
        ]
    )


def report_html(r: Report) -> str:
    """The page with every figure of :data:`~.plots.FIGURES` drawn."""
    from hpcbridge.report.plots import FIGURES

    return render_html(r, [(name, title, draw(r)) for name, title, draw in FIGURES])
