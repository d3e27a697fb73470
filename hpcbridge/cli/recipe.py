"""``hpcbridge recipe``: Dockerfile -> definition file, and back with ``--to docker``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import click


def _looks_like_def(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return bool(re.match(r"bootstrap\s*:", stripped, re.I))
    return False


@click.command("recipe")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
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
    from hpcbridge.errors import InputError
    from hpcbridge.fsutil import atomic_write_text
    from hpcbridge.recipe import def_to_dockerfile, dockerfile_to_def

    name = "<stdin>" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}", "give a readable text file") from exc
    if target is None:
        target = "docker" if _looks_like_def(text) else "def"
    result = def_to_dockerfile(text, name) if target == "docker" else dockerfile_to_def(text, name)
    for note in result.notes:
        click.echo(f"hpcbridge: note: {note}", err=True)
    if output:
        atomic_write_text(output, result.text)
    else:
        click.echo(result.text, nl=False)
