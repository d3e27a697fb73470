"""``hpcbridge submit`` and ``hpcbridge rerun``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click

if TYPE_CHECKING:
    from hpcbridge.tracking.session import Session


def _session() -> Session:
    from hpcbridge.config import load_config
    from hpcbridge.tracking.session import open_session

    return open_session(load_config())


def _report(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    chunks = out["chunks"]
    jobs = ", ".join(
        f"{c['job_id']} (tasks {c['indices']}{' + ' + str(c['offset']) if c['offset'] else ''})"
        if len(chunks) > 1
        else str(c["job_id"])
        for c in chunks
        if c.get("job_id")
    )
    head = f"{out['id']}: submitted {out['task_count']} task(s) as job {jobs}"
    if out.get("parent"):
        head += f" ({out['kind']} of {out['parent']})"
    click.echo(head)
    if out.get("deferred"):
        waiting = [c for c in chunks if not c.get("job_id")]
        click.echo(
            f"  {len(waiting)} chunk(s) wait for room under your submit limit; "
            f"`hpcbridge watch {out['id']}` submits them as earlier ones finish"
        )
    click.echo(f"  follow it with: hpcbridge watch {out['id']}")


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field.")
@click.option(
    "--dry-run", is_flag=True, help="Print the script (as `hpcbridge render` does); submit nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the submission as JSON.")
@click.option(
    "--retry",
    type=click.IntRange(0, 20),
    default=0,
    help="Retries (with backoff) while the controller is unreachable.",
)
def submit(job_file: str, sets: tuple[str, ...], dry_run: bool, as_json: bool, retry: int) -> None:
    """Convert the image (once), render, sbatch and record JOB_FILE.

    Arrays above the cluster's MaxArraySize are split into chunks with an index
    offset; every task still sees its global index as {task}.
    """
    if dry_run:
        from hpcbridge.config import load_config
        from hpcbridge.submit.dryrun import render_text

        click.echo(render_text(load_config(), job_file, sets), nl=False)
        return
    from hpcbridge.submit.actions import submit_job

    sess = _session()
    out = submit_job(sess, job_file, sets, retries=retry, cwd=os.getcwd())
    _report(out, as_json)


@click.command()
@click.argument("sub_id", required=False)
@click.option(
    "--from",
    "bundle",
    type=click.Path(file_okay=False, exists=True),
    help="Rerun an exported bundle (hpcbridge export) instead of a local record.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new submission as JSON.")
@click.option(
    "--retry",
    type=click.IntRange(0, 20),
    default=0,
    help="Retries while the controller is unreachable.",
)
def rerun(sub_id: Optional[str], bundle: Optional[str], as_json: bool, retry: int) -> None:
    """Submit a recorded submission again, identically (same scripts, same SIF).

    The new submission differs only in its id (and so its outcome and log
    directory); it is linked to the original.  With ``--from BUNDLE`` the job of
    an exported bundle is submitted on this machine: its image is converted from
    the pinned digest (the SIF must come out byte-identical) and submitted.
    """
    if (sub_id is None) == (bundle is None):
        raise click.UsageError("give either a submission ID or --from BUNDLE (not both)")
    sess = _session()
    if sub_id is not None:
        from hpcbridge.submit.actions import rerun as do_rerun

        out = do_rerun(sess, sess.store.resolve(sub_id), retries=retry)
    else:
        from hpcbridge.submit.bundle import rerun_from_bundle

        out = rerun_from_bundle(sess, Path(str(bundle)), retries=retry)
    _report(out, as_json)
