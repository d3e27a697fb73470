"""docs/cli/ is generated from the click definitions and must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_cli_docs_are_up_to_date() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-cli-docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr


def test_every_command_has_a_page() -> None:
    import click

    from hpcbridge.cli import cli

    ctx = click.Context(cli, info_name="hpcbridge")
    for name in cli.list_commands(ctx):
        page = ROOT / "docs" / "cli" / f"{name}.md"
        assert page.exists(), f"{page} missing: run scripts/gen-cli-docs.py"
        assert f"# hpcbridge {name}" in page.read_text()
