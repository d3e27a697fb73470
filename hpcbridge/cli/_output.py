"""Small output helpers shared by the CLI commands.

* :func:`use_color`: colour only on a terminal and never when ``NO_COLOR`` is set
  (https://no-color.org: any non-empty value) or ``TERM=dumb``.
* :func:`is_tty`: whether progress displays may be drawn (stderr is a terminal).
* :func:`echo_json`: one JSON document on stdout, sorted keys, stable for scripts.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import IO, Any, Optional

import click


def is_tty(stream: Optional[IO[str]] = None) -> bool:
    """True when ``stream`` (default: stderr, where progress goes) is a terminal."""
    s = stream if stream is not None else sys.stderr
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):
        return False


def use_color(
    stream: Optional[IO[str]] = None, environ: Optional[Mapping[str, str]] = None
) -> bool:
    """Colour for ``stream`` (default: stdout): a terminal, no ``NO_COLOR``, not ``TERM=dumb``."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("TERM") == "dumb":
        return False
    return is_tty(stream if stream is not None else sys.stdout)


def style(text: str, color: bool, **styles: Any) -> str:
    """``click.style`` when ``color``, else the text unchanged."""
    return click.style(text, **styles) if color else text


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON with sorted keys (non-JSON values via ``str``)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
