"""The apptainer/singularity command-line flag table and a parser for it.

``exec_flags.json`` (copied from the project's reference, generated from the
Apptainer and SingularityCE Go sources) lists every global and action flag with
its scope, whether it takes a value, which implementation has it and since which
Apptainer release.  hpcbridge refuses, at render time, to put a flag on a command
line that the configured runtime and version do not have, and the tests use
:func:`parse_command` to check every rendered script the same way.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import ConfigError

FLAVORS = ("apptainer", "singularity")
SUBCOMMANDS = ("exec", "run", "shell")


@dataclass(frozen=True)
class FlagInfo:
    name: str
    short: Optional[str]
    takes_value: bool
    value_type: str  # bool | string | int | stringSlice | stringArray | stringToString
    scope: str  # "global" | "action"
    commands: tuple[str, ...]
    in_apptainer: bool
    in_singularityce: bool
    apptainer_since: Optional[str]
    deprecated: Optional[str]
    env: tuple[str, ...] = ()  # APPTAINER_*/SINGULARITY_* variables Apptainer reads for it
    env_singularityce: tuple[str, ...] = ()  # ... and SingularityCE


@functools.lru_cache(maxsize=1)
def _table() -> tuple[FlagInfo, ...]:
    raw: list[dict[str, Any]] = json.loads(
        Path(__file__).with_name("exec_flags.json").read_text(encoding="utf-8")
    )
    return tuple(
        FlagInfo(
            name=e["name"],
            short=e.get("short"),
            takes_value=bool(e["takes_value"]),
            value_type=e["value_type"],
            scope=e["scope"],
            commands=tuple(e.get("commands") or ()),
            in_apptainer=bool(e["in_apptainer"]),
            in_singularityce=bool(e["in_singularityce"]),
            apptainer_since=e.get("apptainer_since"),
            deprecated=e.get("deprecated"),
            env=tuple(e.get("env") or ()),
            env_singularityce=tuple(e.get("env_singularityce") or ()),
        )
        for e in raw
    )


def all_flags() -> tuple[FlagInfo, ...]:
    """Every flag of the table (both runtimes, every scope)."""
    return _table()


def parse_version(text: Optional[str]) -> Optional[tuple[int, int, int]]:
    """``"1.4.5"``, ``"v1.3.0-rc.1"``, ``"apptainer version 1.2.5-1.el8"`` -> (1, 4, 5)."""
    if not text:
        return None
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def flags_for(flavor: str, scope: str, command: str = "exec") -> dict[str, FlagInfo]:
    """Flags of ``flavor`` usable at ``scope``, keyed by ``--long`` and ``-s``."""
    out: dict[str, FlagInfo] = {}
    for f in _table():
        if f.scope != scope:
            continue
        if scope == "action" and command not in f.commands:
            continue
        if not (f.in_apptainer if flavor == "apptainer" else f.in_singularityce):
            continue
        out["--" + f.name] = f
        if f.short:
            out["-" + f.short] = f
    return out


def available(info: FlagInfo, flavor: str, version: Optional[str]) -> Optional[str]:
    """None if ``info`` exists for the runtime, else the reason it does not."""
    if flavor == "apptainer":
        if not info.in_apptainer:
            return "exists only in SingularityCE"
        since = parse_version(info.apptainer_since)
        if info.apptainer_since and since is None:
            # e.g. "unreleased (HEAD only)": no released Apptainer has it
            return f"not in a released Apptainer ({info.apptainer_since})"
        have = parse_version(version)
        if since and have and have < since:
            return f"needs Apptainer >= {info.apptainer_since.lstrip('v')}"  # type: ignore[union-attr]
        return None
    if not info.in_singularityce:
        return "exists only in Apptainer"
    return None


@dataclass(frozen=True)
class ParsedCommand:
    """An apptainer command line split the way the runtime's CLI parses it."""

    executable: str
    global_flags: tuple[tuple[str, Optional[str]], ...]
    subcommand: str
    options: tuple[tuple[str, Optional[str]], ...]
    image: str
    args: tuple[str, ...]


def parse_command(
    argv: Sequence[str], flavor: str = "apptainer", version: Optional[str] = None
) -> ParsedCommand:
    """Parse ``argv`` (starting at the runtime executable) like the runtime does.

    Global flags must come before the subcommand, action flags before the image
    (parsing stops at the first positional).  Every flag must exist for
    ``flavor``/``version``.  Raises :class:`ConfigError` naming the flag otherwise.
    """
    if not argv:
        raise ConfigError("empty runtime command line")
    exe, rest = argv[0], list(argv[1:])
    glob = flags_for(flavor, "global")
    i = 0
    globals_: list[tuple[str, Optional[str]]] = []
    while i < len(rest) and rest[i].startswith("-"):
        name, value, i = _take(rest, i, glob, flavor, version, "before the subcommand")
        globals_.append((name, value))
    if i >= len(rest) or rest[i] not in SUBCOMMANDS:
        got = rest[i] if i < len(rest) else "nothing"
        raise ConfigError(
            f"{exe}: expected a subcommand ({', '.join(SUBCOMMANDS)}) but found {got!r}",
            "global flags go before the subcommand, action flags after it",
        )
    sub = rest[i]
    i += 1
    action = flags_for(flavor, "action", sub)
    options: list[tuple[str, Optional[str]]] = []
    while i < len(rest) and rest[i].startswith("-"):
        if rest[i] == "--":
            i += 1
            break
        name, value, i = _take(rest, i, action, flavor, version, f"of {exe} {sub}")
        options.append((name, value))
    if i >= len(rest):
        raise ConfigError(f"{exe} {sub}: no image on the command line")
    image = rest[i]
    args = tuple(rest[i + 1 :])
    if sub == "exec" and not args:
        raise ConfigError(f"{exe} exec {image}: no command after the image")
    return ParsedCommand(exe, tuple(globals_), sub, tuple(options), image, args)


def _take(
    rest: list[str],
    i: int,
    table: dict[str, FlagInfo],
    flavor: str,
    version: Optional[str],
    where: str,
) -> tuple[str, Optional[str], int]:
    token = rest[i]
    key, eq, inline = token.partition("=")
    if not token.startswith("--") and len(token) > 2:
        key, inline, eq = token[:2], token[2:], "x"  # -Bsrc:dst
    info = table.get(key)
    if info is None:
        raise ConfigError(
            f"{flavor} has no flag {key!r} {where}{_why_missing(key, flavor)}",
            "check the runtime's flag list (docs/jobs.md) or the configured runtime.flavor",
        )
    reason = available(info, flavor, version)
    if reason:
        raise ConfigError(
            f"flag --{info.name} {reason} (configured {flavor} {version or '?'})",
            "upgrade the runtime or set runtime.version correctly",
        )
    if info.takes_value:
        if eq:
            return "--" + info.name, inline, i + 1
        if i + 1 >= len(rest):
            raise ConfigError(f"flag --{info.name} needs a value")
        return "--" + info.name, rest[i + 1], i + 2
    return "--" + info.name, (inline if eq else None), i + 1


def _why_missing(key: str, flavor: str) -> str:
    for f in _table():
        if key not in ("--" + f.name, "-" + (f.short or "")):
            continue
        if flavor == "apptainer" and not f.in_apptainer:
            return " (it exists only in SingularityCE)"
        if flavor == "singularity" and not f.in_singularityce:
            return " (it exists only in Apptainer)"
        if f.scope == "global":
            return " (it is a global flag: it goes before the subcommand)"
        return " (it is an action flag: it goes after the subcommand, before the image)"
    return ""
