"""``hpcbridge images list|inspect|prune``: the SIF cache."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import click

from hpcbridge import api


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


cache_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory [config cache.dir].",
)


@click.group("images")
def images() -> None:
    """List, inspect and prune the cached SIF images."""


@images.command("list")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_(cache_dir: Optional[Path], as_json: bool) -> None:
    """List cached SIFs, most recently used first."""
    found = api.images_list(cache_dir)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in found.images], indent=2))
        return
    if not found.images:
        click.echo(f"no cached images in {found.root}")
        return
    click.echo(f"{'DIGEST':<19}  {'SIZE':>9}  {'LAST USED':<16}  REF")
    for i in found.images:
        refs = i.refs or ["?"]
        size = api.human_size(i.size)
        click.echo(f"{i.digest[:19]}  {size:>9}  {_when(i.last_used):<16}  {refs[-1]}")
    click.echo(f"{len(found.images)} images, {api.human_size(found.total)} in {found.sif_dir}")


@images.command("inspect")
@click.argument("what")
@cache_option
def inspect(what: str, cache_dir: Optional[Path]) -> None:
    """Show the record of one cached image (by digest prefix or reference), as JSON."""
    click.echo(
        json.dumps(api.images_inspect(what, cache_dir).full_dict(), indent=2, sort_keys=True)
    )


@images.command("prune")
@cache_option
@click.option("--older-than", help="Remove images not used for this long (e.g. 30d, 12h).")
@click.option(
    "--max-size", help="Then remove least recently used images until the cache fits (e.g. 50G)."
)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cached image and blob.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def prune(
    cache_dir: Optional[Path],
    older_than: Optional[str],
    max_size: Optional[str],
    remove_all: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove cached images (and downloaded blobs) by age and/or total size.

    Blobs are only a download cache: they are removed first (all of them with
    --max-size or --all, those older than --older-than otherwise).  Images held
    by a running conversion are skipped.
    """
    done = api.images_prune(
        cache_dir=cache_dir,
        older_than=older_than,
        max_size=max_size,
        remove_all=remove_all,
        dry_run=dry_run,
    )
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for r in done.removed:
        if r.image is not None:
            refs = r.image.refs or ["?"]
            size = api.human_size(r.size)
            click.echo(f"{verb} {r.image.digest[:19]}  {size:>9}  {refs[-1]}")
    blobs = [r for r in done.removed if r.image is None]
    if blobs:
        total = api.human_size(sum(r.size for r in blobs))
        click.echo(f"{verb} {len(blobs)} downloaded blobs ({total})")
    click.echo(f"{'would free' if dry_run else 'freed'} {api.human_size(done.freed)}")
