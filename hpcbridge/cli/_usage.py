"""Command-line usage errors as one line naming the value and the fix.

click prints three lines (usage, "Try --help", the error); hpcbridge prints one,
in the shape of every other error::

    hpcbridge: error: render: no option --partition (use --set resources.partition=NAME)

An unknown option of a command that takes ``--set`` is looked up in the job-file
schema (``--partition`` is ``resources.partition``, ``--cpus-per-task`` is
``resources.cpus_per_task``); otherwise click's own suggestion, the command's
usage line or its ``--help`` is the pointer.
"""

from __future__ import annotations

import difflib
from typing import Optional

import click

#: A placeholder for ``--set KEY=...`` by the key's kind in the job-file schema.
_PLACEHOLDER = {
    "str": "NAME",
    "int": "N",
    "time": "HH:MM:SS",
    "mem": "SIZE",
    "bool": "true",
    "array": "0-9",
}
#: sbatch option names that are not a schema key's name.
_SBATCH_ALIASES = {
    "job-name": "name",
    "J": "name",
    "p": "resources.partition",
    "t": "resources.time",
}


def usage_line(exc: click.UsageError, commands: Optional[list[str]] = None) -> str:
    """The one line printed for ``exc`` (without the ``hpcbridge: error:`` prefix)."""
    where = _command(exc.ctx)
    prefix = f"{where}: " if where else ""
    message, hint = _explain(exc, commands or [])
    return prefix + message + (f" ({hint})" if hint else "")


def _command(ctx: Optional[click.Context]) -> str:
    if ctx is None:
        return ""
    parts = ctx.command_path.split()
    return " ".join(parts[1:])  # without the program name


def _help_pointer(ctx: Optional[click.Context]) -> str:
    path = ctx.command_path if ctx is not None else "hpcbridge"
    return f"see `{path} --help`"


def _explain(exc: click.UsageError, commands: list[str]) -> tuple[str, str]:
    ctx = exc.ctx
    if isinstance(exc, click.NoSuchOption):
        return _no_such_option(exc)
    if isinstance(exc, click.MissingParameter):
        return _missing(exc)
    if isinstance(exc, click.BadOptionUsage) and exc.option_name:
        text = _first_lower(exc.format_message()).rstrip(".")
        return text, f"give it one: {exc.option_name} VALUE"
    message = exc.format_message().strip()
    if message.startswith("No such command"):
        name = message.split("'")[1] if "'" in message else message
        close = difflib.get_close_matches(name, commands, n=1)
        hint = f"did you mean `{_path(ctx)} {close[0]}`?" if close else _help_pointer(ctx)
        return f"no command {name!r}", hint
    text = _first_lower(" ".join(message.split())).rstrip(".")
    if isinstance(exc, click.BadParameter):
        return text, _help_pointer(ctx)
    if text.startswith("got unexpected extra argument") and ctx is not None:
        return text, _usage(ctx)
    return text, ""  # hpcbridge's own usage errors say what to do


def _path(ctx: Optional[click.Context]) -> str:
    return ctx.command_path if ctx is not None else "hpcbridge"


def _no_such_option(exc: click.NoSuchOption) -> tuple[str, str]:
    name = exc.option_name
    message = f"no option {name}"
    key = _job_key(name) if _takes_sets(exc.ctx) else None
    if key is not None:
        return message, f"use --set {key}={_placeholder(key)}"
    if exc.possibilities:
        return message, f"did you mean {' or '.join(sorted(exc.possibilities))}?"
    return message, _help_pointer(exc.ctx)


def _takes_sets(ctx: Optional[click.Context]) -> bool:
    return ctx is not None and any(p.name == "sets" for p in ctx.command.params)


def _job_key(option: str) -> Optional[str]:
    """The job-file key an sbatch-style option names (``--cpus-per-task``), or None."""
    from hpcbridge.job.schema import SCHEMA

    name = option.lstrip("-").split("=", 1)[0]
    if name in _SBATCH_ALIASES:
        return _SBATCH_ALIASES[name]
    flat = name.replace("-", "_")
    for key, kind in SCHEMA.items():
        if isinstance(kind, dict):
            for sub in kind:
                if sub == flat or f"{key}_{sub}" == flat:
                    return f"{key}.{sub}"
        elif key == flat:
            return key
    return None


def _placeholder(key: str) -> str:
    from hpcbridge.job.schema import SCHEMA

    kind: object = SCHEMA
    for part in key.split("."):
        kind = kind.get(part) if isinstance(kind, dict) else None
    return _PLACEHOLDER.get(str(kind), "VALUE")


def _missing(exc: click.MissingParameter) -> tuple[str, str]:
    param = exc.param
    kind = exc.param_type or (param.param_type_name if param is not None else "parameter")
    name = ""
    if param is not None:
        name = (
            param.human_readable_name
            if kind == "argument"
            else "/".join(getattr(param, "opts", []) or [param.human_readable_name])
        )
    usage = _usage(exc.ctx) if exc.ctx is not None else _help_pointer(None)
    return f"missing {kind} {name}".rstrip(), usage


def _usage(ctx: click.Context) -> str:
    return f"usage: {ctx.command_path} {' '.join(ctx.command.collect_usage_pieces(ctx))}"


def _first_lower(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text
