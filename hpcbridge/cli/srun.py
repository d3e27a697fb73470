"""``hpcbridge srun``: pyxis-style srun, for interactive steps from a login node."""

from __future__ import annotations

import click

from hpcbridge import api

_HELP = """Run a step with pyxis' --container-* options through Apptainer.

\b
  hpcbridge srun [srun options] [--container-* options] [--dry-run] command [args...]
  e.g. hpcbridge srun --container-image=ubuntu:24.04 --pty bash

The image is converted once to a cached SIF on this node; then srun runs with
every Slurm option as given (--pty, -p, --gres, --mpi ...), and each task runs
the command in the container, with the mounts, working directory, environment
and GPU flags pyxis would give it (see docs/pyxis.md).  --dry-run prints the
srun command line instead (the image is previewed, not converted).
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
def srun(args: tuple[str, ...]) -> None:
    plan = api.srun_plan(args)
    for note in plan.notes:
        click.echo(f"hpcbridge: note: {note}", err=True)
    if plan.dry_run:
        click.echo(api.srun_dry_run(plan), nl=False)
        return
    api.srun_exec(plan)
