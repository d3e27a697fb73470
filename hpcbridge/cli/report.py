"""``hpcbridge report``: how a submission and its resubmissions used the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json
from hpcbridge.report.jsonout import report_to_dict
from hpcbridge.report.text import report_lines


@click.command()
@click.argument("sub_id")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (schema: hpcbridge/report/schema.json)."
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write one self-contained HTML page with plots (needs hpcbridge[report]).",
)
@click.option("--all", "show_all", is_flag=True, help="List every attempt, not only notable ones.")
def report(sub_id: str, as_json: bool, html_file: Optional[Path], show_all: bool) -> None:
    """Per task: state, node, elapsed, CPU time, peak memory; requested vs used as
    distributions, failures by reason, wasted core-hours, and the memory and time
    requests that would have fitted (``hpcbridge rerun ID --right-size`` applies them).

    Covers the submission and its resubmissions.  Peak memory and CPU time come
    from sacct when the cluster keeps accounting, else from the task's cgroup
    when the job script could read it; a figure nobody measured is shown as
    unknown, never estimated.  See docs/report.md.
    """
    rep = api.report(sub_id)
    written = api.report_html(rep, html_file) if html_file is not None else None
    if as_json:
        echo_json(report_to_dict(rep))
    else:
        for line in report_lines(rep, show_all=show_all):
            click.echo(line)
    if written is not None:
        click.echo(f"HTML report: {written.path} ({written.size // 1024} KiB)", err=as_json)
