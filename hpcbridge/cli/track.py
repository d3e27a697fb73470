"""``hpcbridge status | watch | resubmit | cancel | logs | list``."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Optional

import click

from hpcbridge.errors import ExitCode

if TYPE_CHECKING:
    from hpcbridge.tracking.session import Session


def _session(ctx: click.Context) -> Session:
    from hpcbridge.config import load_config
    from hpcbridge.tracking.session import open_session

    obj = ctx.find_object(dict) or {}
    if "session" not in obj:
        obj["session"] = open_session(load_config())
    sess: Session = obj["session"]
    return sess


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


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
    from hpcbridge.tracking.text import status_lines

    sess = _session(ctx)
    if ids:
        sub_ids = [sess.store.resolve(i) for i in ids]
    else:
        sub_ids = sess.store.ids()
        sub_ids = sub_ids if show_all else sub_ids[-20:]
    cycle = sess.tracker.cycle(sub_ids)
    summaries = [cycle.summary(i) for i in sub_ids]
    if as_json:
        _echo_json({"submissions": summaries})
    else:
        if not summaries:
            click.echo("no submissions yet")
        for s in summaries:
            for line in status_lines(s, detail=bool(ids)):
                click.echo(line)
    if any(s["failed"] and not (s.get("latest") or {}).get("ok") for s in summaries):
        ctx.exit(int(ExitCode.FAILURE))


def _interval(sess: Session, requested: Optional[float]) -> float:
    floor = sess.min_interval
    if requested is None:
        return floor
    if requested < floor:
        click.echo(
            f"hpcbridge: note: --interval {requested:g} s is below the site minimum "
            f"polling.min_interval = {floor:g} s; using {floor:g} s",
            err=True,
        )
        return floor
    return requested


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
    from hpcbridge.submit.submitter import submit_deferred
    from hpcbridge.tracking.text import progress_line

    sess = _session(ctx)
    sub_ids = [sess.store.resolve(i) for i in ids]
    every = _interval(sess, interval)
    delay = every
    tty = sys.stdout.isatty()
    drawn = 0
    while True:
        cycle = sess.tracker.cycle(sub_ids, max_age=every)
        for i in sub_ids:
            submit_deferred(sess, cycle.records[i], cycle)
        summaries = [cycle.summary(i) for i in sub_ids]
        lines = [progress_line(s) for s in summaries]
        error = cycle.answer.error if cycle.answer is not None else None
        if error:
            delay = min(delay * 2, sess.max_backoff)
            lines.append(f"scheduler not reachable ({error}); retrying in {delay:g} s")
        else:
            delay = every
        if tty:
            if drawn:
                sys.stdout.write(f"\x1b[{drawn}F\x1b[J")
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            drawn = len(lines)
        else:
            stamp = time.strftime("%H:%M:%S")
            for line in lines:
                click.echo(f"{stamp} {line}")
        views = [s.get("latest") or s for s in summaries]
        if all(v["done"] for v in views) and not any(
            sess.store.load(i).get("deferred") for i in sub_ids
        ):
            break
        time.sleep(delay)
    for s in summaries:
        view = s.get("latest") or s
        if view["failed"]:
            click.echo(f"{s['id']}: failed tasks {view['failed_tasks']}")
    if not all((s.get("latest") or s)["ok"] for s in summaries):
        ctx.exit(int(ExitCode.FAILURE))


@click.command()
@click.argument("sub_id")
@click.option("--failed", is_flag=True, required=True, help="Resubmit the failed tasks.")
@click.option("--mem", default=None, help="New memory: 8G, or +50% of the original.")
@click.option("--time", "time_", default=None, help="New time limit: 02:00:00, or x2.")
@click.option("--dry-run", is_flag=True, help="Print the script instead of submitting.")
@click.option("--json", "as_json", is_flag=True, help="Print the new record's summary as JSON.")
@click.pass_context
def resubmit(
    ctx: click.Context,
    sub_id: str,
    failed: bool,
    mem: Optional[str],
    time_: Optional[str],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Submit the failed tasks of a submission again, as a new linked submission.

    By default tasks that ran out of memory get 50% more memory and tasks that
    timed out twice the time; --mem / --time set it for all of them.
    """
    from hpcbridge.submit.actions import resubmit_failed

    sess = _session(ctx)
    out = resubmit_failed(sess, sess.store.resolve(sub_id), mem=mem, time=time_, dry_run=dry_run)
    if dry_run:
        click.echo(out["script"], nl=False)
        return
    if as_json:
        _echo_json(out)
    else:
        click.echo(
            f"{out['id']}: resubmitted tasks {out['tasks']} of {out['parent']} "
            f"as job(s) {','.join(out['job_ids'])}"
            + (f" ({out['note']})" if out.get("note") else "")
        )


@click.command()
@click.argument("sub_id")
@click.option("--tasks", default=None, help="Only these tasks, e.g. 3,5-7.")
@click.pass_context
def cancel(ctx: click.Context, sub_id: str, tasks: Optional[str]) -> None:
    """Cancel a submission, or some of its tasks."""
    from hpcbridge.submit.actions import cancel_tasks

    sess = _session(ctx)
    done = cancel_tasks(sess, sess.store.resolve(sub_id), tasks)
    click.echo(f"cancelled {done}")


@click.command()
@click.argument("sub_id")
@click.option("--task", type=int, default=None, help="Global task index (default: the first).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task ends.")
@click.pass_context
def logs(ctx: click.Context, sub_id: str, task: Optional[int], follow: bool) -> None:
    """Print (or follow) the Slurm log of one task."""
    from hpcbridge.tracking.logs import find_log, follow_log

    sess = _session(ctx)
    rid = sess.store.resolve(sub_id)
    path, task_id = find_log(sess.store, rid, task, wait=follow)
    if follow:
        for chunk in follow_log(path, sess.store.path(rid) / "outcomes" / f"{task_id}.end"):
            click.echo(chunk, nl=False)
    else:
        click.echo(path.read_text(errors="replace"), nl=False)


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-n", "limit", type=int, default=20, show_default=True, help="How many (newest).")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, limit: int) -> None:
    """List recent submissions (newest last), from the records alone: no scheduler query."""
    from hpcbridge.tracking.text import list_line

    sess = _session(ctx)
    records = list(sess.store.records())[-limit:] if limit > 0 else list(sess.store.records())
    if as_json:
        keys = ("id", "name", "kind", "parent", "children", "state", "submitted_at", "snapshot")
        rows = []
        for r in records:
            row = {k: r.get(k) for k in keys}
            row["job_ids"] = [c.get("job_id") for c in r.get("chunks", [])]
            row["tasks"] = r.get("tasks")
            rows.append(row)
        _echo_json({"submissions": rows})
        return
    for r in records:
        click.echo(list_line(r))
