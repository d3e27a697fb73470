"""Shell words: literal strings and per-task values, quoted for bash.

Templates never glue command strings together.  Python builds argv lists whose
elements are either plain ``str`` (quoted with :func:`shlex.quote`) or a
:class:`Word`: a sequence of literal text and references to shell variables that
the generated script sets per task (``{task}``, ``{input}``...).  A ``Word``
renders as one shell word, e.g. ``'/out/'"${hpcb_task}"'.txt'``: the literal
parts are single-quoted and the variables double-quoted, so no value is ever
split or globbed, whatever it contains.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Var:
    """A reference to a shell variable, expanded inside double quotes."""

    name: str

    def __post_init__(self) -> None:
        if not _VAR.match(self.name):
            raise ValueError(f"not a shell variable name: {self.name!r}")


@dataclass(frozen=True)
class Word:
    """One shell word made of literal strings and :class:`Var` references."""

    parts: tuple[Union[str, Var], ...]

    @classmethod
    def of(cls, *parts: Union[str, Var]) -> Word:
        return cls(tuple(p for p in parts if not (isinstance(p, str) and p == "")))

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    @property
    def literal(self) -> str:
        """The text of a word without variables (ValueError otherwise)."""
        if not self.is_literal:
            raise ValueError("word has variable parts")
        return "".join(p for p in self.parts if isinstance(p, str))

    def variables(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Var))

    def __str__(self) -> str:  # a readable form for messages, not for the shell
        return "".join(p if isinstance(p, str) else "${" + p.name + "}" for p in self.parts)


#: An element of an argv list in a rendered script.
Arg = Union[str, Word]


def quote_word(word: Arg) -> str:
    """Quote one argv element for bash (a ``str`` with shlex, a ``Word`` part by part)."""
    if isinstance(word, str):
        return shlex.quote(word)
    if not word.parts:
        return "''"
    out: list[str] = []
    for part in word.parts:
        if isinstance(part, Var):
            out.append('"${' + part.name + '}"')
        else:
            out.append(shlex.quote(part))
    return "".join(out)


def quote_argv(argv: Iterable[Arg]) -> str:
    """Quote an argv list as one line of shell words."""
    return " ".join(quote_word(a) for a in argv)


def shquote(value: object) -> str:
    """The Jinja filter: a ``str``/``Word`` becomes one word, a list/tuple an argv line.

    Integers are printed as decimal; anything else is a programming error.
    """
    if isinstance(value, (str, Word)):
        return quote_word(value)
    if isinstance(value, bool):
        raise TypeError("shquote: refusing to quote a bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return quote_argv(value)
    raise TypeError(f"shquote: cannot quote {type(value).__name__}")


def display(arg: Arg) -> str:
    return arg if isinstance(arg, str) else str(arg)


def comment_text(value: object) -> str:
    """The Jinja ``comment`` filter: a value printed on a ``#`` comment line.

    Printable text stays as it is; a line break or any other non-printable
    character becomes a Python-style escape (``\\n``, ``\\x1b``, ``\\u2028``), so
    no value can end the comment and start a script line.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"comment: cannot print {type(value).__name__}")
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
