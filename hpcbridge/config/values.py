"""Conversion of one configuration value: checked against its kind, typed.

The kind of every key is in :data:`hpcbridge.config.schema.FIELDS`; each kind
has one converter in :data:`CONVERTERS`.  Pure: values arrive already read (TOML
values, or text from environment variables and flags); paths are expanded
against the given environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hpcbridge import _toml
from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.job.mounts import parse_binds
from hpcbridge.job.values import ENV_NAME, unknown_hint
from hpcbridge.slurm_syntax import PMI_NAME, SRUN_OWNED_OPTIONS, parse_mem, parse_time_limit

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _bad(label: str, dotted: str, value: Any, what: str, fix: str) -> ConfigError:
    return ConfigError(f"{label}: {dotted} = {value!r} {what}", fix)


@dataclass(frozen=True)
class _At:
    """Where a value comes from: its key and source (for messages), the directory
    relative paths resolve against and the environment ``$VAR`` expands from."""

    dotted: str
    label: str
    base_dir: str
    environ: Mapping[str, str]

    def bad(self, value: Any, what: str, fix: str) -> ConfigError:
        return _bad(self.label, self.dotted, value, what, fix)


def convert_value(
    kind: str,
    value: Any,
    dotted: str,
    label: str,
    base_dir: str,
    environ: Mapping[str, str],
    *,
    text: bool,
) -> Any:
    """Check and convert one value of ``kind`` (see schema.FIELDS).

    ``text`` is True for environment/flag strings, which are converted to the
    kind (``"true"``, ``"30"``, ``"a,b"``); TOML values must have the right type.
    An ``opt`` prefix (``optint``) only says the key may be left unset.
    """
    base = kind[3:] if kind.startswith("opt") else kind
    if text and isinstance(value, str):
        value = _from_text(base, value, dotted, label)
    at = _At(dotted, label, base_dir, environ)
    if base.startswith("choice:"):
        return _choice(value, base.split(":", 1)[1].split("|"), at)
    return CONVERTERS[base](value, at)


def _choice(value: Any, choices: list[str], at: _At) -> str:
    if value not in choices:
        raise at.bad(value, "is not valid", unknown_hint(str(value), choices, "choose one of"))
    return str(value)


def _str(value: Any, at: _At) -> str:
    if not isinstance(value, str):
        key = at.dotted.rsplit(".", 1)[-1]
        raise at.bad(value, "is not a string", f'quote it: {key} = "{value}"')
    if "\n" in value or "\x00" in value:
        raise at.bad(value, "contains a newline", "write it on one line")
    return value


def _bool(value: Any, at: _At) -> bool:
    if not isinstance(value, bool):
        raise at.bad(value, "is not true/false", "write true or false (no quotes)")
    return value


def _int(value: Any, at: _At) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise at.bad(value, "is not a positive whole number", "write e.g. 4")
    return value


def _float(value: Any, at: _At) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise at.bad(value, "is not a positive number of seconds", "write e.g. 30")
    return float(value)


def _path(value: Any, at: _At) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise at.bad(value, "is not a path", 'write e.g. "/scratch/$USER/hpcbridge"')
    text = _expand(value, at.dotted, at.label, at.environ)
    return Path(os.path.normpath(os.path.join(at.base_dir, text)))


def _str_list(value: Any, at: _At) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise at.bad(value, "is not a list of strings", '["a", "b"]')
    return tuple(value)


def _env_patterns(value: Any, at: _At) -> tuple[str, ...]:
    """Variable names, or prefixes written ``PREFIX*``."""
    items = _str_list(value, at)
    for item in items:
        if not ENV_NAME.fullmatch(item[:-1] if item.endswith("*") else item):
            raise at.bad(item, "is not a variable name or PREFIX*", "e.g. OMP_* or LANG")
    return items


def _deny_list(value: Any, at: _At) -> tuple[str, ...]:
    """Absolute paths: ``P`` is exactly P, ``P/**`` is P and everything below."""
    out = []
    for item in _str_list(value, at):
        text = _expand(item, at.dotted, at.label, at.environ)
        tree = text.endswith("/**")
        path = text[:-3] or "/" if tree else text
        if not path.startswith("/"):
            raise at.bad(item, "is not an absolute path", 'write e.g. "/etc" or "/etc/**"')
        norm = os.path.normpath(path)
        out.append((norm.rstrip("/") + "/**") if tree else norm)
    return tuple(out)


def _bind_list(value: Any, at: _At) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise at.bad(value, "is not a list of binds", '["/scratch:/scratch:rw"]')
    expanded = [
        _expand(v, at.dotted, at.label, at.environ) if isinstance(v, str) else v for v in value
    ]
    try:
        return parse_binds(expanded, at.base_dir, ())
    except JobSpecError as exc:
        raise ConfigError(f"{at.label}: {at.dotted}: {exc.message}", exc.hint) from None


def _str_map(value: Any, at: _At) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise at.bad(value, "is not a table of strings", '{ NAME = "value" }')
    for name in value:
        if not ENV_NAME.fullmatch(name):
            raise at.bad(name, "is not a variable name", "use letters, digits and _")
    return dict(value)


def _pmi(value: Any, at: _At) -> str:
    """An srun MPI plugin name (whether srun has it: the site's pmi_types, cross-checked)."""
    if not isinstance(value, str) or not PMI_NAME.fullmatch(value):
        raise at.bad(value, "is not an srun MPI plugin name", "e.g. pmix, pmi2, cray_shasta, none")
    return value


def _pmi_list(value: Any, at: _At) -> tuple[str, ...]:
    items = _str_list(value, at)
    for item in items:
        _pmi(item, at)
    return items


def _flag_list(value: Any, at: _At) -> tuple[str, ...]:
    """Runtime flag names (``fakeroot`` or ``--fakeroot``), checked against the flag table."""
    items = _str_list(value, at)
    if not items:
        return ()  # the default: no need to load the flag table (~3 ms of every command)
    from hpcbridge.job.flags import flag_table

    out = []
    for item in items:
        name = item.lstrip("-")
        if name not in flag_table():
            raise at.bad(
                item, "is not an Apptainer flag", unknown_hint(name, flag_table(), "flags")
            )
        out.append(name)
    return tuple(out)


def _srun_option_list(value: Any, at: _At) -> tuple[str, ...]:
    """srun long option names (``cpu-bind`` or ``--cpu-bind``) jobs may pass."""
    out = []
    for item in _str_list(value, at):
        name = item.lstrip("-")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise at.bad(item, "is not an srun option name", "e.g. cpu-bind or distribution")
        if name in SRUN_OWNED_OPTIONS:
            raise at.bad(
                item, "is set by hpcbridge itself", f"jobs say it with {SRUN_OWNED_OPTIONS[name]}"
            )
        out.append(name)
    return tuple(out)


def _time(value: Any, at: _At) -> Any:
    return parse_time_limit(value, f"{at.label}: {at.dotted}", ConfigError)


def _mem(value: Any, at: _At) -> int:
    return parse_mem(value, f"{at.label}: {at.dotted}", ConfigError)


#: The converter of each kind of :data:`hpcbridge.config.schema.FIELDS` (``choice:a|b``
#: aside); an ``opt`` prefix is dropped first.
CONVERTERS: dict[str, Callable[[Any, _At], Any]] = {
    "str": _str,
    "bool": _bool,
    "int": _int,
    "float": _float,
    "path": _path,
    "strlist": _str_list,
    "envlist": _env_patterns,
    "pathlist": _deny_list,
    "bindlist": _bind_list,
    "strmap": _str_map,
    "time": _time,
    "mem": _mem,
    "pmi": _pmi,
    "pmilist": _pmi_list,
    "flaglist": _flag_list,
    "srunoptlist": _srun_option_list,
}


def _from_text(base: str, raw: str, dotted: str, label: str) -> Any:
    text = raw.strip()
    if base == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise _bad(label, dotted, raw, "is not true/false", "use 1/0, true/false, yes/no")
    if base in ("int", "float"):
        try:
            return int(text) if base == "int" else float(text)
        except ValueError:
            raise _bad(label, dotted, raw, "is not a number", "write e.g. 30") from None
    if base in ("strlist", "envlist", "pathlist", "bindlist", "pmilist", "flaglist", "srunoptlist"):
        if text.startswith("["):
            return _toml_value(text, dotted, label)
        return [p.strip() for p in text.split(",") if p.strip()]
    if base == "strmap":
        if text.startswith("{"):
            return _toml_value(text, dotted, label)
        out: dict[str, str] = {}
        # a comma starts a new pair only before NAME=, so values may hold commas
        for item in (p for p in re.split(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)", text) if p.strip()):
            name, sep, val = item.partition("=")
            if not sep:
                raise _bad(label, dotted, raw, "is not NAME=value,...", "e.g. UCX_TLS=self,tcp")
            out[name.strip()] = val
        return out
    return raw


def _toml_value(text: str, dotted: str, label: str) -> Any:
    try:
        return _toml.loads(f"v = {text}")["v"]
    except _toml.TOMLDecodeError as exc:
        raise _bad(
            label, dotted, text, f"is not a TOML value ({exc})", "check the quotes"
        ) from None


def _expand(value: str, dotted: str, label: str, environ: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in environ:
            raise _bad(
                label,
                dotted,
                value,
                f"uses ${name}, which is not set",
                f"set {name} or write the path out",
            )
        return environ[name]

    text = _VAR.sub(repl, value)
    if text == "~" or text.startswith("~/"):
        home = environ.get("HOME")
        if not home:
            raise _bad(
                label, dotted, value, "starts with ~ but HOME is not set", "write the path out"
            )
        text = home + text[1:]
    return text
