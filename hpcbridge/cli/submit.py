"""``hpcbridge submit`` and ``hpcbridge rerun``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json
from hpcbridge.cli._progress import progress_for
from hpcbridge.cli.convert import quiet_option
from hpcbridge.cli.render import offline_option, unresolved_note


def _report(out: api.Submission, as_json: bool) -> None:
    if as_json:
        echo_json(out.to_dict())
        return
    r = out.record
    jobs = ", ".join(
        f"{c.job_id} (tasks {c.indices}{' + ' + str(c.offset) if c.offset else ''})"
        if len(r.chunks) > 1
        else str(c.job_id)
        for c in r.chunks
        if c.job_id
    )
    head = f"{r.id}: submitted {r.task_count} task(s) as job {jobs}"
    if r.parent:
        head += f" ({r.kind} of {r.parent})"
    click.echo(head)
    if r.deferred:
        waiting = [c for c in r.chunks if not c.job_id]
        click.echo(
            f"  {len(waiting)} chunk(s) wait for room under your submit limit; "
            f"`hpcbridge watch {r.id}` submits them as earlier ones finish"
        )
    click.echo(f"  follow it with: hpcbridge watch {r.id}")


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field.")
@click.option(
    "--dry-run", is_flag=True, help="Print the script (as `hpcbridge render` does); submit nothing."
)
@offline_option
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
@click.option(
    "--retry",
    type=click.IntRange(0, 20),
    default=0,
    help="Retries (with backoff) while the controller is unreachable.",
)
@quiet_option
def submit(
    job_file: str,
    sets: tuple[str, ...],
    dry_run: bool,
    offline: bool,
    as_json: bool,
    retry: int,
    quiet: bool,
) -> None:
    """Convert the image (once), render, sbatch and record JOB_FILE.

    Arrays above the cluster's MaxArraySize are split into chunks with an index
    offset; every task still sees its global index as {task}.
    """
    if offline and not dry_run:
        raise click.UsageError("--offline goes with --dry-run (submit converts the image)")
    if dry_run:
        done = api.render_script(job_file, sets, offline=offline)
        unresolved_note(done)
        click.echo(done.text, nl=False)
        return
    progress = progress_for(quiet, as_json)
    ok = False
    try:
        out = api.submit(job_file, sets, retries=retry, progress=progress)
        ok = True
    finally:
        if progress is not None:
            progress.finish(ok)
    _report(out, as_json)


@click.command()
@click.argument("sub_id", required=False)
@click.option(
    "--from",
    "bundle",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Rerun an exported bundle (hpcbridge export) instead of a local record.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new submission as JSON.")
@click.option(
    "--retry",
    type=click.IntRange(0, 20),
    default=0,
    help="Retries while the controller is unreachable.",
)
@click.option(
    "--right-size",
    is_flag=True,
    help="Re-render with the memory and time `hpcbridge report ID` suggests; print the changes.",
)
def rerun(
    sub_id: Optional[str], bundle: Optional[Path], as_json: bool, retry: int, right_size: bool
) -> None:
    """Submit a recorded submission again, identically (same scripts, same SIF).

    The new submission differs only in its id (and so its outcome and log
    directory); it is linked to the original.  With ``--from BUNDLE`` the job of
    an exported bundle is submitted on this machine: its image is converted from
    the pinned digest (the SIF must come out byte-identical) and submitted.
    With ``--right-size`` the recorded job file is rendered again with the
    memory and time limit ``hpcbridge report`` suggests (see docs/report.md).
    """
    if (sub_id is None) == (bundle is None):
        raise click.UsageError("give either a submission ID or --from BUNDLE (not both)")
    if right_size and sub_id is not None:
        out = api.rerun_right_size(sub_id, retries=retry)
        _report(out, as_json)
        for line in () if as_json else out.changes:
            click.echo(f"  {line}")
    elif right_size:
        raise click.UsageError("--right-size needs a submission ID (not --from BUNDLE)")
    elif sub_id is not None:
        _report(api.rerun(sub_id, retries=retry), as_json)
    else:
        _report(api.rerun_bundle(Path(str(bundle)), retries=retry), as_json)
