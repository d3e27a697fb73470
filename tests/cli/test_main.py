"""The CLI skeleton: version, help, lazy loading, error mapping."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from hpcbridge import __version__
from hpcbridge.cli import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_commands_without_importing_them() -> None:
    code = (
        "import sys; from hpcbridge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('hpcbridge.cli.')))\n"
        "print('jinja2' in sys.modules, 'requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert "Usage: hpcbridge" in out.stdout
    assert lines[-2] == "[]"
    assert lines[-1] == "False False"


def test_unknown_command_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hpcbridge", "no-such-command"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr == "hpcbridge: error: no command 'no-such-command' (see `hpcbridge --help`)\n"
