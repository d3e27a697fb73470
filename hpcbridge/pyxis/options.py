"""pyxis' options as written: the table, and one reader for every place they appear (pure).

pyxis v0.24 registers its options with srun, salloc and sbatch (``args.c``):
``--container-*`` options take a value, the others are flags.  They are read
here from a list of words (a command line, an ``#SBATCH`` line, an srun line)
into :class:`RawOptions`: values as written, before any interpretation, so the
same words can be handed to the run-time ``srun`` shim.  ``PYXIS_CONTAINER_*``
variables give defaults for options not given (pyxis >= 0.21).  Repeating
``--container-mounts`` (or ``--container-env``) accumulates, as hpcbridge's
users expect from pyxis (issue #159); any other option given twice with two
different values is refused, as pyxis does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from hpcbridge.errors import InputError

#: pyxis options taking a value -> the key they set
VALUE_OPTIONS = {
    "container-image": "image",
    "container-mounts": "mounts",
    "container-workdir": "workdir",
    "container-name": "name",
    "container-save": "save",
    "container-env": "env",
    "container-unshare": "unshare",
}
#: pyxis flags -> (key, value)
FLAG_OPTIONS = {
    "container-mount-home": ("home", True),
    "no-container-mount-home": ("home", False),
    "container-remap-root": ("remap_root", True),
    "no-container-remap-root": ("remap_root", False),
    "container-entrypoint": ("entrypoint", True),
    "no-container-entrypoint": ("entrypoint", False),
    "container-entrypoint-log": ("entrypoint_log", True),
    "container-writable": ("writable", True),
    "container-readonly": ("writable", False),
}
ACCUMULATING = ("mounts", "env")
#: Slurm's own options that share the prefix (OCI containers, Slurm >= 23.02)
SLURM_CONTAINER_OPTIONS = ("container", "container-id")
#: PYXIS_CONTAINER_<NAME> environment defaults: value keys and flag keys
ENV_VALUES = ("image", "mounts", "workdir", "name", "save", "env", "unshare")
ENV_FLAGS = {
    "MOUNT_HOME": ("home", True),
    "REMAP_ROOT": ("remap_root", True),
    "ENTRYPOINT": ("entrypoint", True),
    "ENTRYPOINT_LOG": ("entrypoint_log", True),
    "WRITABLE": ("writable", True),
    "READONLY": ("writable", False),
}
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n"}
KNOWN = ", ".join(f"--{n}" for n in (*VALUE_OPTIONS, *FLAG_OPTIONS))


@dataclass
class RawOptions:
    """pyxis options as written (``values`` single-valued, ``mounts``/``env`` accumulated)."""

    values: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def image(self) -> Optional[str]:
        return self.values.get("image")

    @property
    def name(self) -> Optional[str]:
        return self.values.get("name")

    @property
    def enabled(self) -> bool:
        """pyxis runs a container only with an image or a name (``pyxis_args_enabled``)."""
        return bool(self.image or self.name)

    def __bool__(self) -> bool:
        return bool(self.values or self.mounts or self.env or self.flags)

    def words(self) -> list[str]:
        """The options as ``--container-...`` words again (for the run-time shim)."""
        out = [f"--container-{k}={v}" for k, v in self.values.items()]
        out += [f"--container-mounts={m}" for m in self.mounts]
        out += [f"--container-env={e}" for e in self.env]
        for option, (key, value) in FLAG_OPTIONS.items():
            if self.flags.get(key) is value and key != "entrypoint_log":
                out.append(f"--{option}")
        return out

    def merged_under(self, higher: RawOptions) -> RawOptions:
        """``higher`` wins key by key; accumulating lists come from the first that has any."""
        return RawOptions(
            {**self.values, **higher.values},
            list(higher.mounts or self.mounts),
            list(higher.env or self.env),
            {**self.flags, **higher.flags},
        )


def is_pyxis_word(arg: str) -> bool:
    name = arg[2:].partition("=")[0]
    if name in SLURM_CONTAINER_OPTIONS:
        return False
    return arg.startswith(("--container-", "--no-container-"))


def take(argv: Sequence[str], i: int, into: RawOptions, where: str = "") -> int:
    """Read the pyxis option at ``argv[i]`` into ``into``; the index after it."""
    arg = argv[i]
    name, eq, value = arg[2:].partition("=")
    if name in VALUE_OPTIONS:
        if not eq:
            if i + 1 >= len(argv):
                raise InputError(f"{where}--{name} needs a value", f"write --{name}=VALUE")
            value = argv[i + 1]
            i += 1
        if not value:
            raise InputError(f"{where}--{name} is empty", _example(name))
        add_value(into, VALUE_OPTIONS[name], value, f"{where}--{name}={value}")
        return i + 1
    if name in FLAG_OPTIONS:
        if eq:
            raise InputError(f"{where}--{name} takes no value", f"write --{name}")
        key, flag = FLAG_OPTIONS[name]
        if into.flags.get(key, flag) != flag:
            raise InputError(
                f"{where}--{name} conflicts with an earlier option", "give one of them"
            )
        into.flags[key] = flag
        return i + 1
    raise InputError(f"{where}unknown pyxis option --{name}", f"hpcbridge knows {KNOWN}")


def add_value(into: RawOptions, key: str, value: str, shown: str) -> None:
    if key in ACCUMULATING:
        getattr(into, key).append(value)
        return
    if into.values.get(key, value) != value:
        raise InputError(
            f"{shown} conflicts with an earlier --container-{key}={into.values[key]}",
            "give it once",
        )
    into.values[key] = value


def _example(name: str) -> str:
    examples = {
        "container-image": "e.g. --container-image=nvcr.io#nvidia/pytorch:24.01-py3",
        "container-mounts": "e.g. --container-mounts=/scratch:/scratch",
        "container-workdir": "give a directory in the container, e.g. /workspace",
    }
    return examples.get(name, f"give --{name}=VALUE")


def from_environment(environ: Mapping[str, str]) -> RawOptions:
    """``PYXIS_CONTAINER_*`` defaults (booleans: 1/true/yes/y or 0/false/no/n)."""
    out = RawOptions()
    for key in ENV_VALUES:
        value = environ.get(f"PYXIS_CONTAINER_{key.upper()}")
        if value:
            if key in ACCUMULATING:
                getattr(out, key).append(value)
            else:
                out.values[key] = value
    for suffix, (key, on) in ENV_FLAGS.items():
        name = f"PYXIS_CONTAINER_{suffix}"
        if name in environ and key not in out.flags:
            out.flags[key] = on if env_bool(environ[name], name) else not on
    return out


def env_bool(value: str, name: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InputError(f"{name}={value!r} is not a boolean", "use 1/true/yes/y or 0/false/no/n")
