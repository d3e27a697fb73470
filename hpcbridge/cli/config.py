"""``hpcbridge config show|check``: the layered configuration and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click

from hpcbridge import api


@click.group("config")
def config() -> None:
    """Show or check the layered configuration.

    Layers, lowest first: packaged defaults, site file ($HPCBRIDGE_SITE_CONFIG or
    /etc/hpcbridge/site.toml), user file (~/.config/hpcbridge/config.toml),
    project file (./hpcbridge.toml), HPCBRIDGE_<SECTION>_<KEY> variables, flags.
    """


@config.command("show")
@click.option("--sources", is_flag=True, help="Name the file, variable or flag of every value.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (with --sources: values and sources)."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key for this command, e.g. --set polling.min_interval=60.",
)
def show(sources: bool, as_json: bool, sets: tuple[str, ...]) -> None:
    """Print the resolved configuration."""
    view = api.config_show(sets)
    cfg = view.config
    for warning in cfg.warnings:
        click.echo(f"hpcbridge: warning: {warning}", err=True)
    if as_json:
        doc: Any = cfg.to_dict()
        if sources:
            doc = {
                "config": doc,
                "sources": dict(sorted(cfg.sources.items())),
                "files": list(cfg.layers),
            }
        click.echo(json.dumps(doc, indent=2))
        return
    width = min(max(len(f"{k} = {v}") for k, v, _ in view.rows), 60)  # long lists overflow
    for key, value, source in view.rows:
        line = f"{key} = {value}"
        click.echo(f"{line:<{width}}  # {source}" if sources else line)


@config.command("example")
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Copy the example to this new file instead of printing it.",
)
def example(name: Optional[str], output: Optional[Path]) -> None:
    """List the example site configurations shipped with hpcbridge, or print one.

    \b
    Without a site file from your admins, start from one:
      hpcbridge config example generic-cpu -o ~/site.toml
      export HPCBRIDGE_SITE_CONFIG=~/site.toml   # then edit it; config check ~/site.toml
    """
    if name is None:
        if output is not None:
            raise click.UsageError("-o needs the NAME of an example")
        found = api.config_examples()
        width = max((len(e.name) for e in found), default=0)
        for e in found:
            click.echo(f"{e.name:<{width}}  {e.title}")
        if found:
            click.echo(f"(in {found[0].path.parent}; `hpcbridge config example NAME` prints one)")
        return
    chosen = api.config_example(name, output=output)
    if output is None:
        click.echo(chosen.text(), nl=False)
    else:
        click.echo(f"wrote {output} (from {chosen.path})", err=True)


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def check(ctx: click.Context, file: Path) -> None:
    """Validate a site (or user/project) configuration FILE."""
    problems = api.config_check(file)
    if not problems:
        click.echo(f"{file}: ok")
        for note in api.config_notes(file):
            click.echo(f"hpcbridge: note: {note}", err=True)
        return
    for problem in problems:
        click.echo(f"hpcbridge: error: {problem}", err=True)
    ctx.exit(3)
