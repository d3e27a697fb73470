"""``hpcbridge wrap``: wrapper executables for commands inside an image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._output import echo_json
from hpcbridge.cli._progress import progress_for
from hpcbridge.cli.convert import quiet_option


@click.command("wrap")
@click.argument("image")
@click.argument("commands", nargs=-1, required=True)
@click.option(
    "--dir",
    "bin_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bin"),
    show_default=True,
    help="Directory for the wrappers.",
)
@click.option(
    "--module",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a module file putting --dir on PATH (FILE.lua: Lmod; else Tcl).",
)
@click.option("--bind", "binds", multiple=True, metavar="SRC[:DST[:ro]]", help="Extra bind.")
@click.option("--cleanenv", is_flag=True, help="Start the command with a clean environment.")
@click.option(
    "--gpu", type=click.Choice(["nvidia", "amd"]), help="Give the command the GPUs (--nv/--rocm)."
)
@click.option("--force", is_flag=True, help="Overwrite files not written by hpcbridge wrap.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@quiet_option
def wrap(
    image: str,
    commands: tuple[str, ...],
    bin_dir: Path,
    module: Optional[Path],
    binds: tuple[str, ...],
    cleanenv: bool,
    gpu: Optional[str],
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write executables that run COMMANDS of IMAGE like local programs.

    IMAGE is converted once (or found in the cache) and every wrapper pins that
    SIF by its manifest digest; it runs the command with the site's default
    binds, your working directory (wrapped commands take your relative paths,
    like local programs: the image's WorkingDir does not apply) and your
    arguments unchanged.

    \b
    Example:
      hpcbridge wrap docker://python:3.12-slim python3 pip --dir ~/bin
      ~/bin/python3 -c 'import sys; print(sys.version)'
    """
    progress = progress_for(quiet, as_json)
    ok = False
    try:
        done = api.wrap(
            image,
            commands,
            bin_dir,
            module=module,
            binds=binds,
            cleanenv=cleanenv,
            gpu=gpu,
            force=force,
            progress=progress,
        )
        ok = True
    finally:
        if progress is not None:
            progress.finish(ok)
    if as_json:
        echo_json(done.to_dict())
        return
    for path in done.files:
        click.echo(str(path))
