"""Runscripts with Docker's ENTRYPOINT/CMD semantics, and reading them back (pure).

Apptainer runs a Docker image as ``ENTRYPOINT + (arguments or CMD)``; the
runscript written here does the same with each element shell-quoted::

    if [ "$#" -eq 0 ]; then
        set -- 'default' 'args'
    fi
    exec '/entry' 'point' "$@"

:func:`parse_runscript` recognises that shape (and spython's one-line
``exec words "$@"``) so a definition file goes back to exec-form ENTRYPOINT/CMD.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from hpcbridge.recipe.words import quote_argv

_IF_RE = re.compile(r'if \[ "\$#" -eq 0 \]; then\Z|if \[ \$# -eq 0 \]; then\Z')
# A literal word: bare safe characters, '...' or "..." without expansions, concatenated.
_PART = r"""(?:[A-Za-z0-9_@%+=:,./-]+|'[^']*'|"(?:[^"\\$`]|\\["\\$`])*")"""
_WORD_RE = re.compile(_PART + "+")
_SPACE_RE = re.compile(r"[ \t]+")


def runscript_lines(entrypoint: Optional[Sequence[str]], cmd: Optional[Sequence[str]]) -> list[str]:
    """Lines of a ``%runscript`` running ENTRYPOINT with the arguments or CMD."""
    lines: list[str] = []
    if cmd:
        lines += ['if [ "$#" -eq 0 ]; then', f"    set -- {quote_argv(cmd)}", "fi"]
    if entrypoint:
        lines.append(f'exec {quote_argv(entrypoint)} "$@"')
    else:
        lines.append('exec "$@"')
    return lines


def literal_words(text: str) -> Optional[list[str]]:
    """Split shell words that are pure literals; None if anything expands or is syntax."""
    words: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _WORD_RE.match(text, pos)
        if m is None:
            return None
        words.append(_unquote(m.group(0)))
        pos = m.end()
        sp = _SPACE_RE.match(text, pos)
        if sp is None:
            if pos < len(text):
                return None
            break
        pos = sp.end()
    return words


def _unquote(word: str) -> str:
    out: list[str] = []
    for m in re.finditer(_PART, word):
        part = m.group(0)
        if part.startswith("'"):
            out.append(part[1:-1])
        elif part.startswith('"'):
            out.append(re.sub(r"\\([\"\\$`])", r"\1", part[1:-1]))
        else:
            out.append(part)
    return "".join(out)


def parse_runscript(
    lines: Sequence[str],
) -> Optional[tuple[Optional[list[str]], Optional[list[str]]]]:
    """(entrypoint, cmd) if ``lines`` is a Docker-style runscript, else None."""
    body = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if body and body[0].startswith("#!"):
        body = body[1:]
    cmd: Optional[list[str]] = None
    if len(body) == 4 and _IF_RE.match(body[0]) and body[2] == "fi":
        if not body[1].startswith("set -- "):
            return None
        cmd = literal_words(body[1][len("set -- ") :])
        if cmd is None:
            return None
        body = body[3:]
    if len(body) != 1 or not body[0].startswith("exec "):
        return None
    rest = body[0][len("exec ") :].strip()
    for tail in ('"$@"', '"${@}"'):
        if rest == tail:
            return None if cmd is None else (None, cmd)
        if rest.endswith(" " + tail):
            entry = literal_words(rest[: -len(tail)])
            if not entry:
                return None
            return entry, cmd
    return None
