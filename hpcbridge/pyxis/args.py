"""Parse a pyxis-style ``sbatch`` command line and a batch script's header (pure).

``hpcbridge sbatch [sbatch options] --container-image=REF [--container-*...]
script.sh [args]``: sbatch options pass through to sbatch; ``--container-*``
options (on the command line, in ``#SBATCH`` lines of the script, or as
``PYXIS_CONTAINER_*`` environment defaults, in that precedence) describe the
container the script body runs in.  Semantics follow pyxis v0.24 (see
docs/jobs.md for what maps to what and what is refused).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from hpcbridge.errors import InputError
from hpcbridge.pyxis.values import Mount, parse_mounts
from hpcbridge.scheduler.sbatch_options import directives, take_option

#: hpcbridge's own flags among the sbatch options (reported in the container dict)
OWN_FLAGS = {"--dry-run"}
_CONTAINER_VALUE = {"image", "mounts", "workdir", "env", "name", "save", "unshare"}
_CONTAINER_BOOL = {
    "mount-home": ("mount_home", True),
    "no-container-mount-home": ("mount_home", False),
    "remap-root": ("remap_root", True),
    "no-container-remap-root": ("remap_root", False),
    "entrypoint": ("entrypoint", True),
    "no-container-entrypoint": ("entrypoint", False),
    "entrypoint-log": ("entrypoint_log", True),
    "writable": ("writable", True),
    "readonly": ("writable", False),
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n"}


@dataclass
class ContainerOptions:
    image: Optional[str] = None
    mounts: list[Mount] = field(default_factory=list)
    workdir: Optional[str] = None
    env: list[str] = field(default_factory=list)
    mount_home: Optional[bool] = None
    remap_root: Optional[bool] = None
    writable: Optional[bool] = None
    given: set[str] = field(default_factory=set)  # option names already set (precedence)


@dataclass(frozen=True)
class PyxisRequest:
    sbatch_options: tuple[str, ...]  # passed to sbatch on its command line
    container: ContainerOptions
    script: str  # path of the user's batch script
    script_args: tuple[str, ...]
    dry_run: bool = False


def parse_command_line(
    argv: Sequence[str], cwd: str
) -> tuple[list[str], dict[str, str], str, list[str]]:
    """Split ``argv`` into (sbatch options, container options, script, script args)."""
    sbatch: list[str] = []
    container: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in OWN_FLAGS:
            container[arg] = ""
            i += 1
            continue
        if arg.startswith("--container-") or arg.startswith("--no-container-"):
            name, eq, value = arg[2:].partition("=")
            key = name[len("container-") :] if name.startswith("container-") else name
            if key in _CONTAINER_VALUE:
                if not eq:
                    if i + 1 >= len(argv):
                        raise InputError(f"--{name} needs a value", f"write --{name}=VALUE")
                    value = argv[i + 1]
                    i += 1
                _once(container, key, value, f"--{name}")
            elif key in _CONTAINER_BOOL:
                if eq:
                    raise InputError(f"--{name} takes no value", f"write --{name}")
                _once(container, key, "", f"--{name}")
            else:
                raise InputError(
                    f"unknown pyxis option --{name}",
                    "hpcbridge knows --container-image, -mounts, -workdir, -env, "
                    "-mount-home, -remap-root, -writable, -readonly (see docs/jobs.md)",
                )
            i += 1
            continue
        i = take_option(argv, i, sbatch)
    if i >= len(argv):
        raise InputError(
            "no batch script on the command line",
            "give the script path after the options: hpcbridge sbatch [options] script.sh",
        )
    script = argv[i]
    return sbatch, container, os.path.join(cwd, script), list(argv[i + 1 :])


def _once(seen: dict[str, str], key: str, value: str, shown: str) -> None:
    group = _CONTAINER_BOOL[key][0] if key in _CONTAINER_BOOL else key
    for other, val in seen.items():
        other_group = _CONTAINER_BOOL[other][0] if other in _CONTAINER_BOOL else other
        if other_group == group and (other != key or val != value):
            raise InputError(f"{shown} conflicts with an earlier container option", "give it once")
    seen[key] = value


def script_container_options(text: str) -> tuple[dict[str, str], set[int]]:
    """Container options from ``#SBATCH --container-*`` lines, and those line numbers."""
    opts: dict[str, str] = {}
    lines: set[int] = set()
    for n, words in directives(text):
        if not any(w.startswith(("--container-", "--no-container-")) for w in words):
            continue
        lines.add(n)
        try:
            _sbatch, container, _script, _args = parse_command_line([*words, "script"], "/")
        except InputError as exc:
            raise InputError(f"script line {n + 1}: {exc.message}", exc.hint) from None
        for key, value in container.items():
            if key in OWN_FLAGS:
                raise InputError(f"script line {n + 1}: {key} is not an sbatch option", "remove it")
            if not any(_group(k) == _group(key) for k in opts):
                opts[key] = value
    return opts, lines


_ENV_BOOLS: dict[str, tuple[str, Optional[str]]] = {
    "MOUNT_HOME": ("mount-home", "no-container-mount-home"),
    "REMAP_ROOT": ("remap-root", "no-container-remap-root"),
    "WRITABLE": ("writable", "readonly"),
    "READONLY": ("readonly", "writable"),
    "ENTRYPOINT": ("entrypoint", "no-container-entrypoint"),
    "ENTRYPOINT_LOG": ("entrypoint-log", None),
}


def build_options(
    cli: Mapping[str, str], script: Mapping[str, str], environ: Mapping[str, str], cwd: str
) -> ContainerOptions:
    """Merge command line > script ``#SBATCH`` lines > ``PYXIS_CONTAINER_*`` defaults."""
    merged: dict[str, str] = {}
    for source in (cli, script):
        for key, value in source.items():
            if not any(_group(k) == _group(key) for k in merged):
                merged[key] = value
    for key in sorted(_CONTAINER_VALUE):
        env_value = environ.get(f"PYXIS_CONTAINER_{key.upper()}")
        if env_value and key not in merged:
            merged[key] = env_value
    for suffix, (on, off) in _ENV_BOOLS.items():
        name = f"PYXIS_CONTAINER_{suffix}"
        if name not in environ:
            continue
        chosen = on if _env_bool(environ[name], name) else off
        if chosen is None or any(_group(k) == _group(chosen) for k in merged):
            continue
        merged[chosen] = ""
    return _to_options(merged, cwd)


def _group(key: str) -> str:
    return _CONTAINER_BOOL[key][0] if key in _CONTAINER_BOOL else key


def _env_bool(value: str, name: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InputError(f"{name}={value!r} is not a boolean", "use 1/true/yes/y or 0/false/no/n")


def _to_options(merged: Mapping[str, str], cwd: str) -> ContainerOptions:
    opts = ContainerOptions(given=set(merged))
    for key in ("name", "save", "unshare"):
        if key in merged:
            raise InputError(
                f"--container-{key} is not supported by hpcbridge",
                "hpcbridge runs the cached SIF of --container-image; drop the option",
            )
    if "entrypoint" in merged or "entrypoint-log" in merged:
        raise InputError(
            "--container-entrypoint is not supported by hpcbridge",
            "the script body runs directly (pyxis' default); drop the option",
        )
    opts.image = merged.get("image")
    if "mounts" in merged:
        opts.mounts = parse_mounts(merged["mounts"], cwd)
    if "workdir" in merged:
        wd = merged["workdir"]
        if not wd:
            raise InputError("--container-workdir is empty", "give a directory in the container")
        opts.workdir = posixpath.normpath(wd if wd.startswith("/") else "/" + wd)
    if "env" in merged:
        opts.env = [n for n in merged["env"].split(",") if n]
        for name in opts.env:
            if not _ENV_NAME.fullmatch(name):
                raise InputError(
                    f"--container-env name {name!r} is not a variable name",
                    "list names separated by commas, e.g. --container-env=FOO,BAR",
                )
    if "mount-home" in merged:
        opts.mount_home = True
    if "no-container-mount-home" in merged:
        opts.mount_home = False
    if "remap-root" in merged:
        opts.remap_root = True
    if "writable" in merged:
        opts.writable = True
    if "readonly" in merged:
        opts.writable = False
    return opts


def plan_request(
    argv: Sequence[str], read_script: Callable[[str], str], environ: Mapping[str, str], cwd: str
) -> tuple[PyxisRequest, str, set[int]]:
    """The whole parse: command line, the script's ``#SBATCH`` lines, ``PYXIS_*`` defaults.

    Returns the request, the script text and the script lines holding container options.
    """
    sbatch, cli, script, args = parse_command_line(argv, cwd)
    dry_run = cli.pop("--dry-run", None) is not None
    text = read_script(script)
    in_script, lines = script_container_options(text)
    opts = build_options(cli, in_script, environ, cwd)
    if not opts.image:
        raise InputError(
            "no container image given",
            "add --container-image=REF (or #SBATCH --container-image=REF, or PYXIS_CONTAINER_IMAGE)",
        )
    return PyxisRequest(tuple(sbatch), opts, script, tuple(args), dry_run), text, lines
