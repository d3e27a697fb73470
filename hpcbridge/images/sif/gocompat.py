"""Go and Apptainer string encoders, so generated files match ``apptainer build`` byte for byte.

``go_json`` / ``go_map`` (encoding/json), ``go_quote`` (``%q``), apptainer's
``shell.Escape`` / ``ArgsQuoted`` / ``EscapeSingleQuotes``, and the small
subset of text/template that the OCI runscript template uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional


def go_map(value: Mapping[str, Any]) -> dict[str, Any]:
    """A Go ``map`` value: marshalled with its keys sorted."""
    return {k: value[k] for k in sorted(value)}


def go_json(value: Any, indent: Optional[str] = None) -> str:
    """``json.Marshal``/``MarshalIndent`` as Go writes them (HTML escaped).

    Dicts are written in their own order (Go structs); wrap Go maps in :func:`go_map`.
    """
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent, separators=(",", ": "))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def go_quote(s: str) -> str:
    """Go's ``%q`` / ``strconv.Quote``."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(
                {
                    "\a": "\\a",
                    "\b": "\\b",
                    "\f": "\\f",
                    "\n": "\\n",
                    "\r": "\\r",
                    "\t": "\\t",
                    "\v": "\\v",
                }[ch]
            )
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # undecodable byte kept by surrogateescape
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def shell_escape(s: str) -> str:
    """Apptainer's ``shell.Escape``: backslash-escape ``\\ " ` $``."""
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")


def args_quoted(args: Sequence[str]) -> str:
    """Apptainer's ``shell.ArgsQuoted``."""
    return " ".join('"' + shell_escape(a) + '"' for a in args)


def escape_single_quotes(s: str) -> str:
    """Apptainer's ``shell.EscapeSingleQuotes``."""
    return s.replace("'", "'\"'\"'")


def render_go_template(tmpl: str, data: Mapping[str, str]) -> str:
    """Render the tiny subset of text/template that ``ociRunscript`` uses."""
    tokens = re.split(r"(\{\{-?\s*.*?\s*-?\}\})", tmpl)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch active, some branch taken)

    def active() -> bool:
        return all(a for a, _ in stack)

    for i, tok in enumerate(tokens):
        if not (tok.startswith("{{") and tok.endswith("}}")):
            if i > 0 and tokens[i - 1].endswith("-}}"):
                tok = tok.lstrip()
            if i + 1 < len(tokens) and tokens[i + 1].startswith("{{-"):
                tok = tok.rstrip()
            if active():
                out.append(tok)
            continue
        action = tok.strip("{}").strip("-").strip()
        if action.startswith("if "):
            val = bool(data.get(action[3:].strip().lstrip("."), ""))
            stack.append((val, val))
        elif action.startswith("else if "):
            _, taken = stack.pop()
            val = not taken and bool(data.get(action[8:].strip().lstrip("."), ""))
            stack.append((val, taken or val))
        elif action == "else":
            _, taken = stack.pop()
            stack.append((not taken, True))
        elif action == "end":
            stack.pop()
        elif action.startswith("."):
            if active():
                out.append(data.get(action[1:], ""))
        else:
            raise ValueError(f"unsupported template action {action!r}")
    return "".join(out)
