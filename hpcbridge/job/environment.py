"""Builders of the container environment keys: ``env``, ``host_env``, ``env_command`` (pure).

* ``[env]``: values set in the container, byte-exact (placeholders allowed).
* ``host_env``: host variables forwarded under their own name by every task
  (``NAME`` or ``PREFIX*``), as the site's ``env.allow`` does.
* ``[env_command]``: ``NAME = "shell command"``; the task runs the command on its
  node before the container starts and sets ``NAME`` to its output (``MASTER_ADDR``
  from ``scontrol show hostnames``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcbridge.errors import JobSpecError
from hpcbridge.job.fields import as_list, as_str, template
from hpcbridge.job.values import ENV_NAME

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


def check_env_name(name: str, key: str = "env") -> None:
    """A container variable name a job may set (or forward)."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise JobSpecError(
            f"{key} name {name!r} is not a valid variable name",
            "use letters, digits and _, not starting with a digit",
        )
    if name in _ENV_REFUSED:
        raise JobSpecError(f"{key} name {name!r} cannot be set", _ENV_REFUSED[name])
    for prefix in _ENV_REFUSED_PREFIXES:
        if name.startswith(prefix):
            hint = f"names starting with {prefix} are reserved for the runtime/hpcbridge"
            if prefix.startswith(("APPTAINER", "SINGULARITY")):
                hint += "; runtime settings go in [apptainer_env]"
            raise JobSpecError(f"{key} name {name!r} cannot be set", hint)


def parse_env(value: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobSpecError(f"env = {value!r} is not a table", 'e.g. [env] OMP_NUM_THREADS = "4"')
    out: dict[str, str] = {}
    for name, val in value.items():
        check_env_name(name)
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise JobSpecError(
                f"env.{name} = {val!r} is not a string", f'quote it: {name} = "{val}"'
            )
        text = val if isinstance(val, str) else str(val)
        if "\x00" in text:
            raise JobSpecError(f"env.{name} contains a NUL byte", "remove it")
        as_str(text, f"env.{name}", allow_empty=True)
        template(text, f"env.{name}", allowed)
        out[name] = text
    return out


def parse_host_env(value: Any) -> tuple[str, ...]:
    """``host_env = ["SCRATCH", "NCCL_*"]``: names, or prefixes ending in ``*``."""
    out: list[str] = []
    for i, item in enumerate(as_list(value, "host_env")):
        key = f"host_env[{i}]"
        text = as_str(item, key)
        check_env_name(text[:-1] if text.endswith("*") else text, key)
        out.append(text)
    return tuple(dict.fromkeys(out))


def parse_env_command(value: Any, env: dict[str, str]) -> dict[str, str]:
    """``[env_command] NAME = "command"``: the command's output, computed on the node."""
    if not isinstance(value, dict):
        raise JobSpecError(
            f"env_command = {value!r} is not a table",
            'write [env_command] with NAME = "shell command" below it',
        )
    out: dict[str, str] = {}
    for name, command in value.items():
        check_env_name(name, "env_command")
        if name in env:
            raise JobSpecError(
                f"env_command.{name}: {name} is also set in [env]", "keep one of them"
            )
        out[name] = as_str(command, f"env_command.{name}")
    return out
