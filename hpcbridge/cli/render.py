"""``hpcbridge render JOB.toml [--set key=value] [-o FILE]``: print the sbatch script."""

from __future__ import annotations

from pathlib import Path

import click

from hpcbridge import api

offline_option = click.option(
    "--offline",
    is_flag=True,
    help="Do not ask the registry: only what the cache knows (else UNRESOLVED).",
)


def unresolved_note(done: api.Rendered) -> None:
    """One note on stderr when the script names no digest (nothing known of the image)."""
    if done.image.unresolved:
        click.echo(
            f"hpcbridge: note: image {done.image.ref} is UNRESOLVED ({done.image.unresolved}): "
            "the script names no digest; submit resolves and converts it",
            err=True,
        )


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the script to this file (atomically, mode 0755) instead of stdout.",
)
@offline_option
def render(job_file: str, sets: tuple[str, ...], output: str | None, offline: bool) -> None:
    """Print the sbatch script hpcbridge would submit for JOB_FILE.

    Nothing is converted or downloaded: the image's digest and config
    (working directory, entrypoint) come from the cache or from its manifest
    and config (a few kilobytes).  Offline with nothing cached, the script is
    printed with the image marked UNRESOLVED.  A converted image is named by
    its SIF; otherwise by the SIF path `submit` converts it to.
    `hpcbridge submit --dry-run` prints the same text.  Nothing is submitted.
    """
    done = api.render_script(
        job_file, sets, output=Path(output) if output else None, offline=offline
    )
    unresolved_note(done)
    if done.written is None:
        click.echo(done.text, nl=False)
        return
    click.echo(f"wrote {output}", err=True)
