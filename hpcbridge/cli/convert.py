"""``hpcbridge convert REF``: an image to a cached SIF, pinned to its digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.cli._progress import progress_for
from hpcbridge.images.sif.compression import SETTINGS

quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress display (it is drawn only on a terminal)."
)


@click.command("convert")
@click.argument("ref")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=True, path_type=Path),
    help="Also put a copy (hard link when possible) of the SIF here.",
)
@click.option(
    "--backend",
    type=click.Choice(["native", "apptainer"]),
    help="Who builds the SIF [config convert.backend, default native].",
)
@click.option(
    "--platform",
    help="os/arch[/variant] to pick from a multi-platform image [default linux/amd64].",
)
@click.option("--force", is_flag=True, help="Convert again even if the digest is cached.")
@click.option("--offline", is_flag=True, help="Use the last tag resolution; no network.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow plain http to this registry (always allowed for loopback).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory [config cache.dir].",
)
@click.option(
    "--tmp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Scratch directory for root filesystems [config cache.tmp_dir].",
)
@click.option(
    "--compression",
    type=click.Choice(SETTINGS),
    help="squashfs compression; auto: zstd where `hpcbridge doctor --compute` proved the "
    "runtime reads it, else gzip [config convert.compression, default auto].",
)
@click.option("--level", type=int, help="Compression level [config convert.level, default 9].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option
def convert(
    ref: str,
    output: Optional[Path],
    backend: Optional[str],
    platform: Optional[str],
    force: bool,
    offline: bool,
    insecure: bool,
    cache_dir: Optional[Path],
    tmp_dir: Optional[Path],
    compression: Optional[str],
    level: Optional[int],
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert a Docker/OCI image to a SIF in the cache and print its path.

    REF is docker://[registry/]repo[:tag|@sha256:...] (a bare repo:tag means the
    same), docker-archive:PATH, oci:DIR[:tag], oci-archive:PATH[:tag], or a .sif
    file (passed through).  A cached digest returns at once; concurrent
    converts of one digest convert it once and all print the same path.
    """
    progress = progress_for(quiet, as_json)
    ok = False
    try:
        result = api.convert(
            ref,
            output=output,
            backend=backend,
            platform=platform,
            force=force,
            offline=offline,
            insecure=insecure,
            cache_dir=cache_dir,
            tmp_dir=tmp_dir,
            compression=compression,
            level=level,
            progress=progress,
        )
        ok = True
    finally:
        if progress is not None:
            progress.finish(ok)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(str(result.output or result.path))
