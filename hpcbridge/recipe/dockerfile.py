"""Lexing a Dockerfile into instructions (pure).

Follows the Dockerfile reference: parser directives (``# syntax=``, ``# escape=``)
only at the top; a line ending in the escape character continues on the next
one, and comment or empty lines inside a continuation are dropped; the keyword
is case-insensitive; ``RUN``/``CMD``/``ENTRYPOINT``/``SHELL``/``COPY``/``ADD``/
``VOLUME`` take an exec (JSON array) form; ``--flag=value`` options lead the
arguments of ``RUN``/``COPY``/``ADD``/``FROM``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional

from hpcbridge.errors import InputError

JSON_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
FLAG_FORM = frozenset({"RUN", "COPY", "ADD", "FROM", "HEALTHCHECK"})
_DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S+)\s*\Z")
_HEREDOC_ONLY_RE = re.compile(
    r"<<(?P<dash>-?)(?P<quote>[\"']?)(?P<tag>[A-Za-z_][A-Za-z0-9_]*)(?P=quote)(?P<rest>(?:\s+\S+)?)\s*\Z"
)
_HEREDOC_RE = re.compile(r"(?<!<)<<(?!<)-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*[\"']?")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the arguments as Docker joins them (continuations removed)
    lineno: int  # first physical line (1-based)
    pieces: tuple[str, ...] = ()  # the physical argument pieces, for readable output
    flags: dict[str, str] = field(default_factory=dict)
    exec_form: Optional[tuple[str, ...]] = None  # JSON array form
    original: str = ""  # the instruction as written (continuations joined with newlines)
    heredoc: Optional[tuple[str, ...]] = None  # body of `RUN <<EOF` / `COPY <<EOF dest`
    heredoc_quoted: bool = False  # <<'EOF': no expansion in the body


def lex(text: str, name: str = "Dockerfile") -> list[Instruction]:
    """Split ``text`` into instructions; raise InputError for syntax we cannot read."""
    lines = text.replace("\r\n", "\n").split("\n")
    idx = 0
    # Parser directives: leading comment lines of the form `# key=value`.
    while idx < len(lines):
        m = _DIRECTIVE_RE.match(lines[idx].strip())
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "escape" and value != "\\":
            raise InputError(
                f"{name}:{idx + 1}: parser directive escape={value} is not supported",
                "use the default backslash escape character",
            )
        idx += 1
    out: list[Instruction] = []
    while idx < len(lines):
        line = lines[idx]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            idx += 1
            continue
        start = idx
        pieces = [line.rstrip()]
        original = [line.rstrip()]
        while pieces[-1].endswith("\\") and idx + 1 < len(lines):
            pieces[-1] = pieces[-1][:-1]
            idx += 1
            while idx < len(lines) and (
                not lines[idx].strip() or lines[idx].strip().startswith("#")
            ):
                idx += 1
            if idx >= len(lines):
                break
            pieces.append(lines[idx].rstrip())
            original.append(lines[idx].rstrip())
        if pieces[-1].endswith("\\"):
            pieces[-1] = pieces[-1][:-1]
        idx += 1
        ins = _instruction(pieces, start + 1, "\n".join(original), name)
        m = _HEREDOC_ONLY_RE.match(ins.args)
        if m and ins.keyword in {"RUN", "COPY"} and len(pieces) == 1:
            body, idx = _heredoc_body(lines, idx, m, name, start + 1)
            dest = m.group("rest").strip()
            if (ins.keyword == "RUN") == bool(dest):
                raise InputError(
                    f"{name}:{start + 1}: {ins.keyword} {ins.args} is not translated",
                    "use RUN <<EOF (script only) or COPY <<EOF /destination",
                )
            ins = Instruction(
                ins.keyword,
                dest,
                ins.lineno,
                (),
                ins.flags,
                None,
                ins.original,
                body,
                m.group("quote") != "",
            )
        elif ins.keyword in {"RUN", "COPY", "ADD"} and _HEREDOC_RE.search(ins.args):
            raise InputError(
                f"{name}:{start + 1}: {ins.keyword} with a command and a here-document "
                "is not translated",
                "use RUN <<EOF with the script only, or RUN with && and line continuations",
            )
        out.append(ins)
    return out


def _heredoc_body(
    lines: list[str], idx: int, m: re.Match[str], name: str, lineno: int
) -> tuple[tuple[str, ...], int]:
    tag, strip_tabs = m.group("tag"), m.group("dash") == "-"
    body: list[str] = []
    while idx < len(lines):
        line = lines[idx].lstrip("\t") if strip_tabs else lines[idx]
        idx += 1
        if line == tag:
            return tuple(body), idx
        body.append(line)
    raise InputError(f"{name}:{lineno}: here-document {tag} is not closed", f"end it with {tag}")


def _instruction(pieces: list[str], lineno: int, original: str, name: str) -> Instruction:
    head = pieces[0].lstrip()
    keyword, _, rest = head.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    keyword = keyword.upper()
    if not re.fullmatch(r"[A-Z]+", keyword):
        raise InputError(f"{name}:{lineno}: cannot read instruction {head.split()[0]!r}")
    arg_pieces = [rest, *pieces[1:]]
    args = "".join(arg_pieces).strip()
    flags: dict[str, str] = {}
    if keyword in FLAG_FORM:
        while args.startswith("--"):
            word, _, args = args.partition(" ")
            key, _, value = word[2:].partition("=")
            flags[key] = value
            args = args.lstrip()
    exec_form: Optional[tuple[str, ...]] = None
    if keyword in JSON_FORM and args.startswith("["):
        try:
            parsed = json.loads(args)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            exec_form = tuple(parsed)
    # Physical pieces of the arguments (minus the flags), for multi-line RUN output.
    shown = [rest.lstrip(), *pieces[1:]]
    for key in flags:
        shown[0] = re.sub(r"^--" + re.escape(key) + r"(=\S*)?\s*", "", shown[0])
    shown = [p for p in shown if p.strip()]
    return Instruction(keyword, args, lineno, tuple(shown), flags, exec_form, original)
