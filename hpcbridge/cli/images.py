"""``hpcbridge images list|inspect|prune``: the SIF cache."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import click

from hpcbridge import api
from hpcbridge.images.inventory import USAGE_KINDS, CacheUsage


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
    else:
        click.echo(f"{'DIGEST':<19}  {'SIZE':>9}  {'LAST USED':<16}  REF")
        for i in found.images:
            refs = i.refs or ["?"]
            size = api.human_size(i.size)
            click.echo(f"{i.digest[:19]}  {size:>9}  {_when(i.last_used):<16}  {refs[-1]}")
        click.echo(f"{len(found.images)} images, {api.human_size(found.total)} in {found.sif_dir}")
    if found.usage.total:
        click.echo("")
        _usage_lines(found.usage)


def _usage_lines(usage: CacheUsage) -> None:
    click.echo(f"the cache holds {api.human_size(usage.total)} in {usage.root}:")
    for kind, what in USAGE_KINDS.items():
        n = usage.files.get(kind, 0)
        if n:
            size = api.human_size(usage.bytes.get(kind, 0))
            click.echo(f"  {kind:<9} {n:>6} file(s) {size:>10}  {what}")
    if usage.bytes.get("blobs") or usage.bytes.get("partial"):
        click.echo("free the downloaded layers with: hpcbridge images prune --blobs")


@images.command("usage")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def usage_(cache_dir: Optional[Path], as_json: bool) -> None:
    """What the cache directory holds: SIFs, downloaded layers, metadata, scratch."""
    usage = api.images_list(cache_dir).usage
    if as_json:
        click.echo(json.dumps(usage.to_dict(), indent=2))
    elif usage.total:
        _usage_lines(usage)
    else:
        click.echo(f"{usage.root} is empty or does not exist")


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
@click.option(
    "--blobs", is_flag=True, help="Remove the downloaded layers (and interrupted downloads) only."
)
@click.option(
    "--all", "remove_all", is_flag=True, help="Remove every cached image, blob and preview."
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def prune(
    cache_dir: Optional[Path],
    older_than: Optional[str],
    max_size: Optional[str],
    blobs: bool,
    remove_all: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove cached images (and downloaded blobs) by age and/or total size.

    Blobs (the downloaded layers kept after conversion) are only a download
    cache: all of them go with --blobs, --max-size or --all, those older than
    --older-than otherwise.  Images held by a running conversion and downloads
    being resumed are skipped.
    """
    done = api.images_prune(
        cache_dir=cache_dir,
        older_than=older_than,
        max_size=max_size,
        remove_all=remove_all,
        blobs=blobs,
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
    for kind, what in (
        ("blob", "downloaded blobs"),
        ("partial", "interrupted downloads"),
        ("metadata", "metadata files"),
    ):
        some = [r for r in done.removed if r.image is None and r.kind == kind]
        if some:
            total = api.human_size(sum(r.size for r in some))
            click.echo(f"{verb} {len(some)} {what} ({total})")
    click.echo(f"{'would free' if dry_run else 'freed'} {api.human_size(done.freed)}")
