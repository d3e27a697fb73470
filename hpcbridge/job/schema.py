"""The job-file schema: every key with its kind, unknown-key checks, ``--set`` typing.

:data:`SCHEMA` is the one table of job-file keys: :func:`check_keys` refuses
keys it does not list (naming the closest one) and :func:`apply_sets` types
``--set key=value`` overrides by it.  Pure.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hpcbridge import _toml as tomllib
from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import unknown_hint

# kind of each key: str, int, bool, time, mem, array, argv, list, lines, binds, env
# (a table of NAME = "text"), flags (the runtime's flag table), deps, inputs, overlays,
# or a nested table.
SCHEMA: dict[str, Any] = {
    "name": "str",
    "image": "str",
    "command": "argv",
    "script": "str",
    "run": "argv",
    "app": "str",
    "pwd": "str",
    "workdir": "str",
    "resources": {
        "partition": "str",
        "account": "str",
        "qos": "str",
        "time": "time",
        "nodes": "int",
        "ntasks": "int",
        "ntasks_per_node": "int",
        "cpus_per_task": "int",
        "mem": "mem",
        "mem_per_cpu": "mem",
        "gpus": "int",
        "gpus_per_node": "int",
        "gres": "str",
        "constraint": "str",
        "exclusive": "bool",
    },
    "array": "array",
    "inputs": "inputs",
    "inputs_file": "str",
    "binds": "binds",
    "overlays": "overlays",
    "env": "env",
    "host_env": "list",
    "env_command": "env",
    "apptainer": "flags",
    "apptainer_env": "env",
    "mpi": {
        "type": "str",
        "pmi": "str",
        "model": "str",
        "host_mpi_dir": "str",
        "flavor": "str",
        "srun_options": "list",
    },
    "gpu": {"vendor": "str", "count": "int"},
    "modules": "list",
    "pre": "lines",
    "post": "lines",
    "extra_sbatch": "list",
    "dependencies": "deps",
    "signal": "str",
    "requeue": "bool",
    "output": "str",
    "error": "str",
}


def check_keys(table: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    for key in table:
        if key not in schema:
            dotted = f"{prefix}{key}"
            if prefix and key in SCHEMA and not isinstance(SCHEMA[key], dict):
                section = prefix.rstrip(".")
                raise JobSpecError(
                    f"unknown key {dotted!r}: {key!r} is a top-level key but stands under [{section}]",
                    f"move {key} = ... above the first [table] header: TOML puts every key "
                    f"after [{section}] into that table",
                )
            raise JobSpecError(f"unknown key {dotted!r}", unknown_hint(key, schema))


def documented_keys() -> list[str]:
    """Every key as docs/jobs.md names it: dotted, with ``NAME``/``FLAG`` for the keys
    of free-form tables (``env.NAME``, ``apptainer.FLAG``)."""
    out: list[str] = []
    for key, kind in SCHEMA.items():
        if isinstance(kind, dict):
            out += [f"{key}.{sub}" for sub in kind]
        elif kind == "env":
            out.append(f"{key}.NAME")
        elif kind == "flags":
            out.append(f"{key}.FLAG")
        else:
            out.append(key)
    return out


# ----------------------------------------------------------------------- --set


def apply_sets(data: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys, typed by :data:`SCHEMA`)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise JobSpecError(
                f"--set {item!r} is not key=value", "e.g. --set resources.time=01:00:00"
            )
        parts = key.split(".")
        schema: Any = SCHEMA
        target = out
        for i, part in enumerate(parts):
            dotted = ".".join(parts[: i + 1])
            if schema == "env" and i == len(parts) - 1:
                target[part] = raw
                break
            if schema == "flags" and i == len(parts) - 1:
                from hpcbridge.job.flags import flag_kind

                kind = flag_kind(part)
                target[part] = raw if kind is None else _typed(kind, raw, dotted)
                break
            if not isinstance(schema, dict) or part not in schema:
                choices = schema.keys() if isinstance(schema, dict) else ()
                raise JobSpecError(
                    f"--set {item!r}: unknown key {dotted!r}", unknown_hint(part, choices)
                )
            sub = schema[part]
            if i == len(parts) - 1:
                if isinstance(sub, dict):
                    raise JobSpecError(
                        f"--set {item!r}: {dotted!r} is a table",
                        f"set one of {dotted}.<key>: {', '.join(sub)}",
                    )
                target[part] = _typed(sub, raw, dotted)
                break
            if isinstance(sub, dict) or sub in ("env", "flags"):
                nxt = target.get(part)
                if isinstance(nxt, str) and part == "mpi":
                    nxt = {"type": nxt}
                target[part] = dict(nxt) if isinstance(nxt, dict) else {}
                target = target[part]
                schema = sub
            else:
                raise JobSpecError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])!r} is not a table",
                    f"write --set {dotted}=VALUE",
                )
    return out


def _typed(kind: str, raw: str, key: str) -> Any:
    text = raw.strip()
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise JobSpecError(
                f"--set {key}={raw!r} is not a whole number", f"e.g. --set {key}=2"
            ) from None
    if kind == "bool":
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise JobSpecError(f"--set {key}={raw!r} is not true/false", f"write --set {key}=true")
    if kind in ("argv", "list", "lines", "binds", "overlays", "deps", "inputs") and text.startswith(
        "["
    ):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise JobSpecError(
                f"--set {key}={raw!r} is not a TOML array: {exc}", 'e.g. ["a", "b"]'
            ) from None
    if kind == "argv":
        try:
            return shlex.split(raw)
        except ValueError as exc:
            raise JobSpecError(f"--set {key}={raw!r}: {exc}", "balance the quotes") from None
    if kind in ("list", "deps"):
        return [p.strip() for p in text.split(",") if p.strip()]
    if kind in ("binds", "overlays"):
        return [text]
    return raw
