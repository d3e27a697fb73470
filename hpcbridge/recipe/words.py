"""Word splitting and quoting shared by both directions of the recipe translation.

Dockerfile ``ENV``/``ARG``/``LABEL`` arguments are words in Docker's own small
shell-like syntax: ``"double"`` (``\\`` escapes ``"``, ``\\``, ``$``), ``'single'``
(literal) and bare text (``\\x`` is ``x``); ``$NAME`` / ``${NAME}`` /
``${NAME:-default}`` / ``${NAME:+alt}`` outside single quotes refer to earlier
``ENV``/``ARG`` values.  :func:`split_words` turns such text into :class:`Word`
objects that keep both readings: the literal value (references replaced from a
table of known values) and a double-quoted shell form in which the references
stay references, so a ``%environment``/``%post`` line expands them like Docker.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REF_RE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


class WordError(ValueError):
    """Text that cannot be split into words (an unterminated quote...)."""


@dataclass(frozen=True)
class Word:
    """One word: its literal value and a double-quoted shell rendering."""

    literal: str  # references substituted from the known values (unknown ones kept verbatim)
    shell: str  # "..." in which $references are still live
    unresolved: tuple[str, ...]  # names referenced but not known


def _dq_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in '\\"$`':
            out.append("\\")
        out.append(ch)
    return "".join(out)


def dq(text: str) -> str:
    """``text`` as a double-quoted shell word with nothing expanded."""
    return '"' + _dq_escape(text) + '"'


def sq(text: str) -> str:
    """``text`` as a shell word (``shlex.quote``: bare when safe, else single-quoted)."""
    return shlex.quote(text)


def quote_argv(argv: Sequence[str]) -> str:
    """An argv list as shell words."""
    return " ".join(sq(a) for a in argv)


def _resolve(ref: str, known: Mapping[str, str]) -> tuple[str | None, str]:
    """Value of a reference body (``NAME``, ``NAME:-x``, ``NAME:+x``); None if unknown."""
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?\Z", ref, re.S)
    if not m:
        return None, ref
    name, op, arg = m.group(1), m.group(2), m.group(3)
    if op is None:
        return known.get(name), name
    if name not in known:
        return (arg if op == "-" else ""), name
    value = known[name]
    if op == "-":
        return (value if value else arg), name
    return (arg if value else ""), name


def substitute(text: str, known: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Replace ``$NAME``/``${...}`` in bare text from ``known``; return unknown names."""
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        body = m.group("braced") if m.group("braced") is not None else m.group("plain")
        value, name = _resolve(body, known)
        if value is None:
            missing.append(name)
            return m.group(0)
        return value

    return _REF_RE.sub(repl, text), tuple(missing)


def split_words(text: str, known: Mapping[str, str] = {}) -> list[Word]:
    """Split Docker instruction arguments into words (see module doc)."""
    words: list[Word] = []
    lit: list[str] = []
    shell: list[str] = []
    missing: list[str] = []
    in_word = False
    i, n = 0, len(text)

    def flush() -> None:
        nonlocal lit, shell, missing, in_word
        if in_word:
            words.append(Word("".join(lit), '"' + "".join(shell) + '"', tuple(missing)))
        lit, shell, missing, in_word = [], [], [], False

    def reference(start: int) -> int:
        m = _REF_RE.match(text, start)
        if m is None:
            lit.append("$")
            shell.append("\\$")
            return start + 1
        body = m.group("braced") if m.group("braced") is not None else m.group("plain")
        value, name = _resolve(body, known)
        if value is None:
            missing.append(name)
            lit.append(m.group(0))
        else:
            lit.append(value)
        shell.append(m.group(0))
        return m.end()

    quote = ""
    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                lit.append(ch)
                shell.append(_dq_escape(ch))
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = ""
                i += 1
            elif ch == "\\" and i + 1 < n and text[i + 1] in '"\\$`':
                lit.append(text[i + 1])
                shell.append(_dq_escape(text[i + 1]))
                i += 2
            elif ch == "$":
                i = reference(i)
            else:
                lit.append(ch)
                shell.append(_dq_escape(ch))
                i += 1
        elif ch.isspace():
            flush()
            i += 1
        else:
            in_word = True
            if ch in "'\"":
                quote = ch
                i += 1
            elif ch == "\\" and i + 1 < n:
                lit.append(text[i + 1])
                shell.append(_dq_escape(text[i + 1]))
                i += 2
            elif ch == "$":
                i = reference(i)
            else:
                lit.append(ch)
                shell.append(_dq_escape(ch))
                i += 1
    if quote:
        raise WordError(f"unterminated {quote} quote in {text.strip()!r}")
    flush()
    return words


@dataclass(frozen=True)
class Assignment:
    name: str
    value: Word


def split_assignments(
    text: str,
    known: Mapping[str, str] = {},
    *,
    allow_legacy: bool = True,
) -> list[Assignment]:
    """``k=v k2="v 2"`` (or the legacy ``KEY rest of line``) into assignments."""
    stripped = text.strip()
    first = stripped.split(None, 1)[0] if stripped else ""
    if allow_legacy and first and "=" not in first:
        rest = stripped[len(first) :].strip()
        # Legacy form: the value is the rest of the line, quotes still processed.
        parts = split_words(rest, known) if rest else []
        value = _join_words(parts) if parts else Word("", '""', ())
        return [Assignment(first, value)]
    out: list[Assignment] = []
    for word in split_raw(text):
        name, sep, raw_value = word.partition("=")
        if not sep:
            raise WordError(f"{word!r} is not NAME=VALUE")
        values = split_words(raw_value, known) if raw_value else []
        out.append(Assignment(_unquote_name(name), values[0] if values else Word("", '""', ())))
    return out


def _unquote_name(name: str) -> str:
    words = split_words(name)
    return words[0].literal if words else name


def _join_words(parts: list[Word]) -> Word:
    literal = " ".join(p.literal for p in parts)
    shell = '"' + " ".join(p.shell[1:-1] for p in parts) + '"'
    missing: tuple[str, ...] = ()
    for p in parts:
        missing += p.unresolved
    return Word(literal, shell, missing)


def split_raw(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in each raw piece."""
    pieces: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if cur:
                pieces.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
            if ch in "'\"":
                quote = ch
            elif ch == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
        i += 1
    if quote:
        raise WordError(f"unterminated {quote} quote in {text.strip()!r}")
    if cur:
        pieces.append("".join(cur))
    return pieces


def open_quote_at_end(text: str) -> str:
    """The shell quote (``'`` or ``"``) still open at the end of ``text``, or ''."""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\":
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = ""
        elif ch in "'\"":
            quote = ch
        i += 1
    return quote
