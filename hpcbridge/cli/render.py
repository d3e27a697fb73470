"""``hpcbridge render JOB.toml [--set key=value] [-o FILE]``: print the sbatch script."""

from __future__ import annotations

from pathlib import Path

import click

from hpcbridge import api


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the script to this file (atomically, mode 0755) instead of stdout.",
)
def render(job_file: str, sets: tuple[str, ...], output: str | None) -> None:
    """Print the sbatch script hpcbridge would submit for JOB_FILE.

    The image is converted first when it is not in the cache yet (a cached
    digest returns at once; a local .sif path is used as it is), so the script
    names the exact SIF it will run.  `hpcbridge submit --dry-run` prints the same
    text.  Nothing is submitted.
    """
    done = api.render_script(job_file, sets, output=Path(output) if output else None)
    if done.written is None:
        click.echo(done.text, nl=False)
        return
    click.echo(f"wrote {output}", err=True)
