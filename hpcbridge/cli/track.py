"""``hpcbridge status | watch | resubmit | cancel | logs | list``."""

from __future__ import annotations

import sys
import time
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json
from hpcbridge.errors import ExitCode
from hpcbridge.tracking import text


@click.command()
@click.argument("ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/tracking.md).")
@click.option(
    "--all", "show_all", is_flag=True, help="Without IDs: every submission, not only the last 20."
)
@click.pass_context
def status(ctx: click.Context, ids: tuple[str, ...], as_json: bool, show_all: bool) -> None:
    """Show the state of submissions and their tasks (all recent ones without IDs).

    One scheduler query answers for every submission; answers younger than the
    site's minimum polling interval are shared between hpcbridge processes.
    """
    report = api.status(ids, show_all=show_all)
    if as_json:
        echo_json({"submissions": [s.to_dict() for s in report.submissions]})
    else:
        if not report.submissions:
            click.echo("no submissions yet")
        for s in report.submissions:
            for line in text.status_lines(s, detail=bool(ids)):
                click.echo(line)
    if report.failed:
        ctx.exit(int(ExitCode.FAILURE))


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option(
    "--interval", type=float, default=None, help="Seconds between polls (>= the site minimum)."
)
@click.pass_context
def watch(ctx: click.Context, ids: tuple[str, ...], interval: Optional[float]) -> None:
    """Follow submissions until every task has finished.

    A progress bar on a terminal, one line per submission and poll otherwise.
    Exits 1 if any task failed (after resubmissions), 0 if all completed.  If
    the scheduler cannot be reached, says so and keeps waiting with backoff.
    """
    followed = api.watch(ids, interval=interval)
    if followed.note:
        click.echo(f"hpcbridge: note: {followed.note}", err=True)
    tty, drawn, last = sys.stdout.isatty(), 0, None
    for last in followed.snapshots:
        lines = text.watch_lines(last)
        if tty:
            redraw = f"\x1b[{drawn}F\x1b[J" if drawn else ""
            sys.stdout.write(redraw + "\n".join(lines) + "\n")
            sys.stdout.flush()
            drawn = len(lines)
        else:
            stamp = time.strftime("%H:%M:%S")
            for line in lines:
                click.echo(f"{stamp} {line}")
    for s in last.submissions if last is not None else ():
        if s.view.failed:
            click.echo(f"{s.id}: failed tasks {s.view.failed_tasks}")
    if last is None or not last.ok:
        ctx.exit(int(ExitCode.FAILURE))


@click.command()
@click.argument("sub_id")
@click.option("--failed", is_flag=True, required=True, help="Resubmit the failed tasks.")
@click.option("--mem", default=None, help="New memory: 8G, or +50% of the original.")
@click.option("--time", "time_", default=None, help="New time limit: 02:00:00, or x2.")
@click.option("--dry-run", is_flag=True, help="Print the script instead of submitting.")
@click.option("--json", "as_json", is_flag=True, help="Print the new record's summary as JSON.")
def resubmit(
    sub_id: str,
    failed: bool,
    mem: Optional[str],
    time_: Optional[str],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Submit the failed tasks of a submission again, as a new linked submission.

    By default a task that ran out of memory gets its measured peak plus a
    margin (+50% when nothing measured it) and a task that timed out twice its
    measured run time; --mem / --time set it for all of them.
    """
    if dry_run:
        click.echo(api.resubmit_script(sub_id, mem=mem, time=time_), nl=False)
        return
    out = api.resubmit(sub_id, mem=mem, time=time_)
    if as_json:
        echo_json(out.to_dict())
        return
    note = f" ({out.note})" if out.note else ""
    click.echo(
        f"{out.id}: resubmitted tasks {out.failed_tasks} of {out.record.parent} "
        f"as job(s) {','.join(out.record.job_ids())}{note}"
    )
    for line in out.changes:  # what changed for which task, and why
        click.echo(f"  {line}")


@click.command()
@click.argument("sub_id")
@click.option("--tasks", default=None, help="Only these tasks, e.g. 3,5-7.")
def cancel(sub_id: str, tasks: Optional[str]) -> None:
    """Cancel a submission, or some of its tasks."""
    done = api.cancel(sub_id, tasks)
    scancel = f" (scancel {' '.join(done.targets)})" if done.targets else ""
    click.echo(f"cancelled {done.id}: tasks {done.tasks}{scancel}")


@click.command()
@click.argument("sub_id")
@click.option("--task", type=int, default=None, help="Global task index (default: the first).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task ends.")
@click.option(
    "--stderr", is_flag=True, help="The task's --error file (when stderr has a file of its own)."
)
def logs(sub_id: str, task: Optional[int], follow: bool, stderr: bool) -> None:
    """Print (or follow) the Slurm log of one task.

    The record knows where Slurm writes it: hpcbridge's own log directory, or
    the job's --output/--error pattern (see docs/tracking.md).
    """
    if follow:
        for chunk in api.follow_logs(sub_id, task=task, stderr=stderr):
            click.echo(chunk, nl=False)
        return
    click.echo(api.logs(sub_id, task=task, stderr=stderr).text, nl=False)


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-n", "limit", type=int, default=20, show_default=True, help="How many (newest).")
def list_(as_json: bool, limit: int) -> None:
    """List recent submissions (newest last), from the records alone: no scheduler query."""
    records = api.list_submissions(limit)
    if as_json:
        echo_json({"submissions": [text.list_row(r) for r in records]})
        return
    for r in records:
        click.echo(text.list_line(r))
