"""``hpcbridge sbatch``: pyxis-style sbatch: srun --container-* steps (or the whole script) in containers."""

from __future__ import annotations

import sys

import click

from hpcbridge import api

_HELP = """Submit a batch script written for pyxis: its containers run through Apptainer.

\b
  hpcbridge sbatch [sbatch options] [--container-* options] [--dry-run]
      [script.sh [args...] | --wrap=CMD]     (no script: read from standard input)

Steps `srun --container-image=REF ... cmd` of the script run cmd in a
container: the options may come from arrays, strings or variables; other srun
options (--mpi, --ntasks, --overlap, --export) and the script's other lines
are kept as written and run on the host.  With --container-image (or
--container-name) for the whole script (here, in #SBATCH lines or as
PYXIS_CONTAINER_IMAGE) the script itself runs in the container, as pyxis does.

Every image named (REGISTRY#IMAGE:TAG, IMAGE:TAG, docker://..., an enroot
.sqsh, a .sif) is converted once to a cached SIF before the job is submitted.
GPU jobs (--gres=gpu:N, --gpus*, a GPU partition) get --nv/--rocm.  Named
containers (--container-name) keep their state across the steps of the job.
--dry-run prints the generated script without converting or submitting
(images are previewed: manifest and config at most).  The submission is
recorded: `hpcbridge status`, `watch`, `logs`, `cancel`, `list` know it.
See docs/pyxis.md.
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
    plan = api.pyxis_plan(args, stdin=sys.stdin)
    for note in plan.notes:
        click.echo(f"hpcbridge: note: {note}", err=True)
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
