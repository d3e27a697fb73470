"""``hpcbridge recipe``: Dockerfile -> definition file, and back with ``--to docker``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from hpcbridge import api


@click.command("recipe")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (atomically) instead of standard output.",
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["def", "docker"]),
    help="Output format; default: the other one (detected from the input's first line).",
)
def recipe(source: str, output: Optional[str], target: Optional[str]) -> None:
    """Translate a Dockerfile into an Apptainer definition file, or back.

    Every fix or deviation from Docker's behaviour is printed as one note on
    standard error; what cannot be translated (multi-stage builds, %setup,
    here-documents in RUN...) is refused with the reason.

    \b
    Examples:
      hpcbridge recipe Dockerfile -o image.def
      hpcbridge recipe image.def --to docker -o Dockerfile
    """
    result = api.recipe(source, target=target, output=Path(output) if output else None)
    for note in result.notes:
        click.echo(f"hpcbridge: note: {note}", err=True)
    if not output:
        click.echo(result.text, nl=False)
