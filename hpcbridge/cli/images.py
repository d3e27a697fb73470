"""``hpcbridge images list|inspect|prune``: the SIF cache."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import click

from hpcbridge.errors import InputError


def _cache(cache_dir: Optional[Path]) -> Any:
    from hpcbridge.cli.convert import load_settings
    from hpcbridge.images.cache import Cache

    cfg = load_settings(
        {"cache.dir": str(cache_dir) if cache_dir else None}, {"cache.dir": "--cache-dir"}
    )
    return Cache(
        cfg.cache.dir, tmp_dir=cfg.cache.tmp_dir, shared=cfg.cache.shared, group=cfg.cache.group
    )


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "digest": e.digest,
        "path": str(e.path),
        "size": e.size,
        "last_used": e.last_used,
        "created": e.record.get("created"),
        "sif_sha256": e.record.get("sif_sha256"),
        "refs": e.record.get("refs", []),
        "backend": e.record.get("backend"),
    }


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
    from hpcbridge.images.cache import human_size

    cache = _cache(cache_dir)
    entries = sorted(cache.entries(), key=lambda e: -e.last_used)
    if as_json:
        click.echo(json.dumps([_entry_dict(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"no cached images in {cache.root}")
        return
    click.echo(f"{'DIGEST':<19}  {'SIZE':>9}  {'LAST USED':<16}  REF")
    for e in entries:
        refs = e.record.get("refs") or ["?"]
        click.echo(
            f"{e.digest[:19]}  {human_size(e.size):>9}  {_when(e.last_used):<16}  {refs[-1]}"
        )
    total = sum(e.size for e in entries)
    click.echo(f"{len(entries)} images, {human_size(total)} in {cache.sif_dir}")


def _find(cache: Any, what: str) -> Any:
    entries = cache.entries()
    key = what if what.startswith("sha256:") else f"sha256:{what}"
    hits = [e for e in entries if e.digest.startswith(key)] if len(key) > 10 else []
    if not hits:
        hits = [e for e in entries if what in (e.record.get("refs") or [])]
    if not hits:
        from hpcbridge.images.refs import RegistryRef, parse_ref

        try:
            ref = parse_ref(what)
        except InputError:
            ref = None
        if isinstance(ref, RegistryRef):
            names = {str(ref), f"{ref.name}:{ref.tag}"}
            hits = [
                e
                for e in entries
                if names & set(e.record.get("refs") or []) or e.digest == ref.digest
            ]
    if len(hits) > 1:
        raise InputError(
            f"{what!r} matches {len(hits)} cached images", "give more digits of the digest"
        )
    if not hits:
        raise InputError(
            f"no cached image matches {what!r}",
            "`hpcbridge images list` shows the digests and references",
        )
    return hits[0]


@images.command("inspect")
@click.argument("what")
@cache_option
def inspect(what: str, cache_dir: Optional[Path]) -> None:
    """Show the record of one cached image (by digest prefix or reference), as JSON."""
    cache = _cache(cache_dir)
    entry = _find(cache, what)
    data = dict(entry.record)
    data.update(_entry_dict(entry))
    click.echo(json.dumps(data, indent=2, sort_keys=True))


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
    from hpcbridge.images.cache import human_size
    from hpcbridge.images.prune import parse_age, parse_size, select_prune

    if not (older_than or max_size or remove_all):
        raise InputError(
            "images prune needs --older-than, --max-size or --all",
            "e.g. hpcbridge images prune --older-than 30d --max-size 50G",
        )
    cache = _cache(cache_dir)
    now = time.time()
    age = parse_age(older_than) if older_than else None
    size = parse_size(max_size) if max_size else None
    entries = cache.entries()
    chosen = (
        entries if remove_all else select_prune(entries, now=now, older_than=age, max_size=size)
    )
    blobs = [
        b
        for b in cache.blob_entries()
        if remove_all or size is not None or (age is not None and now - b[2] > age)
    ]
    removed: list[dict[str, Any]] = []
    for e in chosen:
        if dry_run or cache.remove_entry(e):
            removed.append({"kind": "sif", **_entry_dict(e)})
    for path, bsize, _ in blobs:
        if not dry_run:
            path.unlink(missing_ok=True)
        removed.append({"kind": "blob", "path": str(path), "size": bsize})
    if not dry_run:
        cache.sweep(now)
    freed = sum(int(r["size"]) for r in removed)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "removed": removed, "freed": freed}, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        if r["kind"] == "sif":
            refs = r["refs"] or ["?"]
            click.echo(f"{verb} {r['digest'][:19]}  {human_size(r['size']):>9}  {refs[-1]}")
    nblobs = sum(1 for r in removed if r["kind"] == "blob")
    if nblobs:
        bsum = sum(int(r["size"]) for r in removed if r["kind"] == "blob")
        click.echo(f"{verb} {nblobs} downloaded blobs ({human_size(bsum)})")
    click.echo(f"{'would free' if dry_run else 'freed'} {human_size(freed)}")
