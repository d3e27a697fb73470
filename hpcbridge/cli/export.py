"""``hpcbridge export``: a submission as a reproducible bundle."""

from __future__ import annotations

from pathlib import Path

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json


@click.command("export")
@click.argument("sub_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to create (must not exist, or be empty).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def export(sub_id: str, output: Path, as_json: bool) -> None:
    """Write everything needed to reproduce submission SUB_ID elsewhere.

    The bundle holds the job file, the rendered scripts, the resolved
    configuration with sources, the image reference with its manifest digest
    and the SIF's sha256, a definition file and a README with the exact
    commands.  On another machine, `hpcbridge rerun --from BUNDLE` converts
    the same digest to a byte-identical SIF and submits the job.

    \b
    Example:
      hpcbridge export last -o paper-fig3/
    """
    done = api.export(sub_id, output)
    if as_json:
        echo_json(done.manifest)
        return
    click.echo(f"{done.id}: exported to {output}/")
    for name in sorted(done.files):
        click.echo(f"  {name}")
