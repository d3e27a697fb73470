"""``hpcbridge sbatch``: pyxis-style sbatch that runs a batch script in a container."""

from __future__ import annotations

import click

from hpcbridge import api

_HELP = """Run an existing batch script inside a container, with pyxis' flags.

\b
  hpcbridge sbatch [sbatch options] --container-image=REF
      [--container-mounts=SRC:DST[:ro],...] [--container-workdir=DIR]
      [--container-env=NAME,...] [--[no-]container-mount-home]
      [--container-writable|--container-readonly] [--container-remap-root]
      [--dry-run] script.sh [args...]

The image (REGISTRY#IMAGE:TAG, IMAGE:TAG, docker://..., or a .sif path) is
converted once to a cached SIF; the script's #SBATCH lines are kept, sbatch
options pass through to sbatch, PYXIS_CONTAINER_* variables give defaults.
--dry-run prints the generated script and submits nothing.  The submission is
recorded like any other: `hpcbridge status`, `watch`, `logs`, `cancel` and
`list` know it (see docs/tracking.md).
"""


@click.command(
    help=_HELP,
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["--help"],
    },
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sbatch(ctx: click.Context, args: tuple[str, ...]) -> None:
    plan = api.pyxis_plan(args)
    if plan.dry_run:
        click.echo(api.pyxis_script(plan), nl=False)
        return
    if plan.test_only:
        trial = api.pyxis_trial(plan)
        click.echo(trial.stderr, nl=False, err=True)
        click.echo(trial.stdout, nl=False)
        ctx.exit(trial.returncode)
    chunk = api.pyxis_submit(plan).record.chunks[0]
    if plan.parsable:
        click.echo(f"{chunk.job_id};{chunk.cluster}" if chunk.cluster else str(chunk.job_id))
    else:
        click.echo(f"Submitted batch job {chunk.job_id}")
