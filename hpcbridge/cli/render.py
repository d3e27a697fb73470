"""``hpcbridge render JOB.toml [--set key=value] [-o FILE]``: print the sbatch script."""

from __future__ import annotations

import click


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
    from hpcbridge.config import load_config
    from hpcbridge.submit.dryrun import render_text

    text = render_text(load_config(), job_file, sets)
    if output is None:
        click.echo(text, nl=False)
        return
    from hpcbridge.errors import InputError
    from hpcbridge.fsutil import atomic_write_text

    try:
        atomic_write_text(output, text, mode=0o755)
    except OSError as exc:
        raise InputError(
            f"cannot write {output}: {exc.strerror}", "choose a writable path for -o"
        ) from None
    click.echo(f"wrote {output}", err=True)
