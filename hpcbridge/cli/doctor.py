"""``hpcbridge doctor``: preflight checks of this machine and, optionally, a job."""

from __future__ import annotations

from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json, style, use_color

_COLORS = {"ok": "green", "warn": "yellow", "fail": "red"}


@click.command("doctor")
@click.argument("job_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a job-file value (as in submit).",
)
@click.option(
    "--compute",
    is_flag=True,
    help="Also probe a compute node (one srun step): does the runtime read zstd SIFs there?",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def doctor(
    ctx: click.Context,
    job_file: Optional[str],
    sets: tuple[str, ...],
    compute: bool,
    as_json: bool,
) -> None:
    """Check that jobs can run here before submitting thousands of tasks.

    Looks at the container runtime and whether it runs rootless (user
    namespaces, /dev/fuse, squashfuse), the cache and tmp directories
    (filesystem, free space, quota, O_EXCL and atomic rename), and with a
    JOB_FILE: bind sources, the site's rules, GPU vendor, MPI launcher and
    Slurm's array limits.  Each finding is ok, warn or fail with one line of
    fix.  The zstd probe runs a tiny gzip and zstd SIF with the runtime here (and
    with --compute on a compute node): conversions use zstd once both read it.
    Exit status: 0 when all is ok, 1 with warnings, 2 with failures.
    """
    report = api.doctor(job_file, sets, compute=compute)
    findings = report.findings
    if as_json:
        echo_json(report.to_dict())
    else:
        color = use_color()
        width = max(len(f.check) for f in findings)
        for f in findings:
            label = style(f"{f.status.label:<4}", color, fg=_COLORS[f.status.label], bold=True)
            click.echo(f"{label}  {f.check:<{width}}  {f.message}")
            if f.fix:
                click.echo(f"{'':<4}  {'':<{width}}  fix: {f.fix}")
        warns = sum(1 for f in findings if f.status.label == "warn")
        fails = sum(1 for f in findings if f.status.label == "fail")
        click.echo(f"doctor: {len(findings)} checks, {warns} warning(s), {fails} failure(s)")
    ctx.exit(int(report.status))
