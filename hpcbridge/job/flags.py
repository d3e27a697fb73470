"""The job file's ``[apptainer]`` and ``[apptainer_env]`` tables (pure).

``[apptainer]`` keys are the long names of Apptainer's (and SingularityCE's)
action and global flags, as in the runtime's flag table
(:mod:`hpcbridge.render.flags`, generated from their sources)::

    [apptainer]
    contain = true                       # --contain
    workdir = "/local/$SLURM_JOB_ID"     # --workdir /local/<id>, resolved on the node
    no-mount = ["tmp", "home"]           # --no-mount tmp,home
    silent = true                        # apptainer --silent exec ...

A bool ``false`` leaves the flag out.  Flags another job key says (``bind`` ->
``binds``, ``pwd`` -> ``pwd``...) or that hpcbridge always sets are refused naming
that key.  Whether the configured runtime and version have a flag is checked at
render time, whether the site forbids it (``runtime.deny_flags``) by
:func:`hpcbridge.config.validate.validate_job`.

``[apptainer_env]`` holds the variables sites document for the runtime process:
``APPTAINER_CONTAINLIBS``, ``APPTAINERENV_LD_LIBRARY_PATH``...  An
``APPTAINERENV_NAME`` is the container variable ``NAME`` (as ``env.NAME``); an
``APPTAINER_NAME`` must be a flag's variable (it counts as that flag) or one of
:data:`RUNTIME_KNOBS`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from hpcbridge.errors import JobSpecError
from hpcbridge.job.fields import as_line, template
from hpcbridge.job.spec import FlagValue, RuntimeFlag
from hpcbridge.job.values import unknown_hint
from hpcbridge.render.flags import FlagInfo, all_flags

#: Flags a job may not set in ``[apptainer]``: what to use instead.
MANAGED = {
    "bind": "binds", "mount": "binds", "overlay": "overlays",
    "nv": "[gpu] (--nv comes from the GPU vendor)", "rocm": "[gpu] (--rocm comes from the GPU vendor)",
    "cleanenv": "nothing: hpcbridge always runs with --cleanenv and forwards what tasks need",
    "no-eval": "nothing: hpcbridge always sets it (byte-exact environment values)",
    "env": "[env]", "env-file": "[env]", "pwd": "pwd", "cwd": "pwd", "app": "app",
    "config": "nothing: the runtime configuration is the site's",
    "build-config": "nothing: it is for builds", "shell": "nothing: only `apptainer shell` has it",
    "docker-login": "nothing: the job runs a local SIF, no registry at run time",
    "docker-username": "nothing: the job runs a local SIF", "docker-password": "nothing",
    "docker-host": "nothing: the job runs a local SIF", "authfile": "nothing: no registry at run time",
    "no-https": "nothing: no registry at run time", "nohttps": "nothing: no registry at run time",
    "disable-cache": "nothing: no registry at run time",
    "passphrase": "pem-path (a batch job cannot type a passphrase)",
}  # fmt: skip
#: Flags whose value is a host path: ``$VAR`` and placeholders allowed, resolved on the node.
PATH_FLAGS = ("workdir", "home")
#: ``APPTAINER_*`` variables the runtime reads that are no flag's.
RUNTIME_KNOBS = ("MESSAGELEVEL", "CACHEDIR", "CONFIGDIR")
#: Variable prefixes of ``[apptainer_env]`` and what they set.
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_", "APPTAINER_", "SINGULARITY_")


@functools.lru_cache(maxsize=1)
def flag_table() -> dict[str, FlagInfo]:
    """Every flag a job can name, by long name (both runtimes' action and global flags)."""
    return {
        f.name: f for f in all_flags() if f.scope == "global" or {"exec", "run"} & set(f.commands)
    }


def flag_kind(name: str) -> Optional[str]:
    """``bool``, ``int``, ``str`` or ``list``: how a flag's value is written; None: no flag."""
    info = flag_table().get(name)
    if info is None:
        return None
    return {"bool": "bool", "int": "int", "string": "str"}.get(info.value_type, "list")


def parse_flags(value: Any, allowed: Sequence[str]) -> tuple[RuntimeFlag, ...]:
    """The ``[apptainer]`` table -> runtime flags (``false`` ones dropped)."""
    if not isinstance(value, dict):
        raise JobSpecError(
            f"apptainer = {value!r} is not a table", "write [apptainer] with flags below it"
        )
    out: list[RuntimeFlag] = []
    for name, raw in value.items():
        key = f"apptainer.{name}"
        kind = flag_kind(name)
        if kind is None:
            raise JobSpecError(
                f"unknown key {key!r}: Apptainer has no flag --{name}",
                unknown_hint(name, flag_table(), "flags"),
            )
        if name in MANAGED:
            raise JobSpecError(f"{key}: hpcbridge sets --{name} itself", f"use {MANAGED[name]}")
        if flag_table()[name].value_type == "stringToString":
            raise JobSpecError(f"{key}: --{name} takes NAME=VALUE pairs", "use [env]")
        flag_value = _flag_value(kind, raw, key, name, allowed)
        if flag_value is not False:
            out.append(RuntimeFlag(name, flag_value))
    return tuple(out)


def _flag_value(kind: str, raw: Any, key: str, name: str, allowed: Sequence[str]) -> FlagValue:
    if kind == "bool":
        if not isinstance(raw, bool):
            raise JobSpecError(f"{key} = {raw!r} is not true/false", f"write {name} = true")
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise JobSpecError(f"{key} = {raw!r} is not a whole number", f"e.g. {name} = 2")
        return raw
    if kind == "list":
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            raise JobSpecError(f"{key} = {raw!r} is not a list of strings", f'{name} = ["a"]')
        texts = tuple(as_line(v, f"{key}[{i}]") for i, v in enumerate(items))
        for text in texts:
            if "," in text:
                raise JobSpecError(
                    f"{key} = {text!r} contains ','", "give one value per list element"
                )
            template(text, key, ())
        return texts
    text = as_line(raw, key)
    if name in PATH_FLAGS:
        template(text, key, allowed, env_refs=True)
        if not text.startswith(("/", "$")):
            raise JobSpecError(f"{key} = {text!r} is not an absolute path", "write it from /")
    else:
        template(text, key, ())
    return text


def parse_apptainer_env(value: Any) -> tuple[dict[str, str], dict[str, str]]:
    """``[apptainer_env]`` -> (runtime variables ``APPTAINER_*``, container env ``NAME``)."""
    if not isinstance(value, dict):
        raise JobSpecError(
            f"apptainer_env = {value!r} is not a table",
            'write [apptainer_env] with APPTAINER_NAME = "value" below it',
        )
    runtime: dict[str, str] = {}
    container: dict[str, str] = {}
    for name, raw in value.items():
        key = f"apptainer_env.{name}"
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise JobSpecError(f"{key} = {raw!r} is not a string", f'quote it: {name} = "{raw}"')
        text = as_line(str(raw), key) if str(raw) else ""
        prefix = next((p for p in ENV_PREFIXES if name.startswith(p)), None)
        if prefix is None or name == prefix:
            raise JobSpecError(
                f"{key}: {name!r} is not an APPTAINER_ or APPTAINERENV_ variable",
                "container variables go in [env]; this table is for the runtime's own",
            )
        if prefix.endswith("ENV_"):
            container[name[len(prefix) :]] = text
            continue
        flag = env_flag(name)
        if flag is not None and flag in MANAGED:
            raise JobSpecError(f"{key} is --{flag}, which hpcbridge sets", f"use {MANAGED[flag]}")
        if flag is None and name[len(prefix) :] not in RUNTIME_KNOBS:
            known = sorted({e for f in flag_table().values() for e in f.env} | _knob_names())
            raise JobSpecError(
                f"{key}: the runtime reads no variable {name!r}",
                unknown_hint(name, known, "variables"),
            )
        runtime[name] = text
    return runtime, container


def env_flag(name: str) -> Optional[str]:
    """The flag an ``APPTAINER_*``/``SINGULARITY_*`` variable stands for (None: none)."""
    for info in flag_table().values():
        if name in info.env or name in info.env_singularityce:
            return info.name
    return None


def denied_flags(
    flags: Sequence[RuntimeFlag], runtime_env: Mapping[str, str], deny: Sequence[str]
) -> Optional[tuple[str, str]]:
    """(what the job sets, the denied flag) for the first flag the site forbids."""
    for flag in flags:
        if flag.name in deny:
            return f"apptainer.{flag.name}", flag.name
    for name in runtime_env:
        by_env = env_flag(name)
        if by_env is not None and by_env in deny:
            return f"apptainer_env.{name}", by_env
    return None


def _knob_names() -> set[str]:
    return {p + k for p in ("APPTAINER_", "SINGULARITY_") for k in RUNTIME_KNOBS}
