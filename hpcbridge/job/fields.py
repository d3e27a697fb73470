"""Readers of single job-file values: type checks with one-line errors (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import TemplatePart, parse_template, unknown_hint


def as_str(value: Any, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise JobSpecError(f"{key} = {value!r} is not a string", f'quote it: {key} = "{value}"')
    if not allow_empty and not value.strip():
        raise JobSpecError(f"{key} is empty", f"give {key} a value or remove it")
    if "\x00" in value:
        raise JobSpecError(f"{key} = {value!r} contains a NUL byte", "remove it")
    if "\x1f" in value:  # the marker of run-time values in rendered scripts
        raise JobSpecError(f"{key} = {value!r} contains the control character U+001F", "remove it")
    return value


def as_line(value: Any, key: str) -> str:
    text = as_str(value, key)
    if "\n" in text or "\r" in text:
        raise JobSpecError(f"{key} = {text!r} contains a newline", "write it on one line")
    return text


def opt_str(table: Mapping[str, Any], key: str, dotted: str) -> Optional[str]:
    return None if table.get(key) is None else as_line(table[key], dotted)


def pos_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobSpecError(f"{key} = {value!r} is not a positive whole number", f"e.g. {key} = 1")
    return value


def choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise JobSpecError(
            f"{key} = {value!r} is not valid", unknown_hint(str(value), choices, "choose one of")
        )
    return value


def template(
    text: str, key: str, allowed: Sequence[str], *, env_refs: bool = False
) -> tuple[TemplatePart, ...]:
    """The placeholders (and, with ``env_refs``, ``$VAR`` references) of ``text``."""
    return tuple(
        p for p in parse_template(text, key, allowed, env_refs=env_refs) if not isinstance(p, str)
    )


def as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise JobSpecError(f"{key} = {value!r} is not a list", f'e.g. {key} = ["..."]')
    return value


def as_lines(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(ln for ln in as_str(value, key).splitlines() if ln.strip())
    return tuple(as_line(v, f"{key}[{i}]") for i, v in enumerate(as_list(value, key)))
