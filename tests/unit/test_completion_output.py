"""hpcbridge/cli/_output.py: colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from hpcbridge.cli._output import is_tty, style, use_color


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_color_rules() -> None:
    assert use_color(FakeTTY(), {}) is True
    assert use_color(FakeTTY(), {"NO_COLOR": "1"}) is False
    assert use_color(FakeTTY(), {"NO_COLOR": ""}) is True  # no-color.org: non-empty only
    assert use_color(FakeTTY(), {"TERM": "dumb"}) is False
    assert use_color(io.StringIO(), {}) is False
    assert is_tty(FakeTTY()) and not is_tty(io.StringIO())
    assert style("x", False, fg="red") == "x"
    assert style("x", True, fg="red") != "x"


def _doctor_on_a_pty(tmp_path: Path, **env: str) -> str:
    """Run `hpcbridge doctor` with its stdout on a real pseudo-terminal; return what it wrote."""
    main, child = pty.openpty()
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TERM": "xterm"}
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcbridge", "doctor"],
        stdout=child,
        stderr=subprocess.DEVNULL,
        env=full,
        cwd=tmp_path,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pty")
def test_doctor_colours_a_terminal_unless_no_color(tmp_path: Path) -> None:
    coloured = _doctor_on_a_pty(tmp_path)
    assert "\x1b[" in coloured and "runtime" in coloured
    plain = _doctor_on_a_pty(tmp_path, NO_COLOR="1")
    assert "\x1b[" not in plain and "runtime" in plain
