"""Job-file schema and primitive value checks shared by the job builders (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import Field, parse_template, unknown_hint

ListInputs = Callable[[str, str, str], "tuple[str, list[str]]"]

# kind of each key: str, int, bool, time, mem, array, argv, list, lines, binds, env,
# deps, inputs, or a nested table.
SCHEMA: dict[str, Any] = {
    "name": "str",
    "image": "str",
    "command": "argv",
    "script": "str",
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
    "env": "env",
    "mpi": {"type": "str", "pmi": "str", "model": "str", "host_mpi_dir": "str", "flavor": "str"},
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

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_GRES = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)*")
# environment names the runtime refuses or overwrites, and hpcbridge's own
_ENV_REFUSED = {
    "HOME": "Apptainer refuses to set HOME in the container; remove it",
    "UID": "Apptainer ignores UID in the container environment",
    "GID": "Apptainer ignores GID in the container environment",
}
_ENV_REFUSED_PREFIXES = (
    "APPTAINER_",
    "SINGULARITY_",
    "APPTAINERENV_",
    "SINGULARITYENV_",
    "HPCBRIDGE_",
)
# sbatch options that have a job-file field (or that hpcbridge sets itself)
_SBATCH_FIELDS = {
    "array": "array", "job-name": "name", "output": "output", "error": "error",
    "comment": "nothing: hpcbridge uses --comment to track the submission",
    "partition": "resources.partition", "account": "resources.account", "qos": "resources.qos",
    "time": "resources.time", "nodes": "resources.nodes", "ntasks": "resources.ntasks",
    "ntasks-per-node": "resources.ntasks_per_node", "cpus-per-task": "resources.cpus_per_task",
    "mem": "resources.mem", "mem-per-cpu": "resources.mem_per_cpu", "gpus": "resources.gpus",
    "gpus-per-node": "resources.gpus_per_node", "gres": "resources.gres",
    "constraint": "resources.constraint", "exclusive": "resources.exclusive",
    "dependency": "dependencies", "signal": "signal", "requeue": "requeue",
    "no-requeue": "requeue", "parsable": "nothing: hpcbridge adds it when submitting",
}  # fmt: skip


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


def as_str(value: Any, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise JobSpecError(f"{key} = {value!r} is not a string", f'quote it: {key} = "{value}"')
    if not allow_empty and not value.strip():
        raise JobSpecError(f"{key} is empty", f"give {key} a value or remove it")
    if "\x00" in value:
        raise JobSpecError(f"{key} = {value!r} contains a NUL byte", "remove it")
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


def template(text: str, key: str, allowed: Sequence[str]) -> tuple[Field, ...]:
    return tuple(p for p in parse_template(text, key, allowed) if isinstance(p, Field))


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


#: Command-line flags for job fields (``--partition gpu`` == ``--set resources.partition=gpu``),
#: for commands that offer the job fields as options (render, submit).
JOB_FLAGS: dict[str, str] = {
    "name": "name",
    "image": "image",
    "workdir": "workdir",
    "partition": "resources.partition",
    "account": "resources.account",
    "qos": "resources.qos",
    "time": "resources.time",
    "nodes": "resources.nodes",
    "ntasks": "resources.ntasks",
    "ntasks-per-node": "resources.ntasks_per_node",
    "cpus-per-task": "resources.cpus_per_task",
    "mem": "resources.mem",
    "mem-per-cpu": "resources.mem_per_cpu",
    "gpus": "resources.gpus",
    "gpus-per-node": "resources.gpus_per_node",
    "gres": "resources.gres",
    "constraint": "resources.constraint",
    "array": "array",
    "inputs": "inputs",
    "mpi": "mpi.type",
    "pmi": "mpi.pmi",
    "gpu-vendor": "gpu.vendor",
    "signal": "signal",
}


def flag_sets(values: Mapping[str, object]) -> tuple[str, ...]:
    """``--set`` items for the given flags (flag name without dashes -> value; None = not given)."""
    out = []
    for flag, value in values.items():
        key = JOB_FLAGS.get(flag.lstrip("-").replace("_", "-"))
        if key is None:
            raise JobSpecError(
                f"--{flag} is not a job field", unknown_hint(flag, JOB_FLAGS, "job flags")
            )
        if value is not None:
            out.append(f"{key}={value}")
    return tuple(out)
