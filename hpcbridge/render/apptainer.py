"""Build ``apptainer exec|run`` / ``singularity exec|run`` argv lists (pure).

The runtime's CLI stops parsing flags at the first positional argument, so the
order is fixed: executable, global flags, subcommand, action flags, image,
command (or the runscript's arguments).  The builders take typed values
(:class:`ContainerCall`, :class:`BindArg`, :class:`OverlayArg`, flag name and
value for :func:`flag_args`), not job files: the job renderer and the pyxis
entry share them.  Everything the container needs from the environment is passed by the
per-task launcher (:mod:`hpcbridge.render.launcher`) as ``APPTAINERENV_*``
variables, never as ``--env`` (whose comma/``=`` parsing would mangle values).

Binds: a plain path pair becomes ``-B SRC:DST[:ro]``; a path containing ``,``,
``:``, ``"``, a backslash or a control character becomes ``--mount`` with CSV
quoting, which Apptainer parses exactly (``-B`` has no working escape for them).
SingularityCE CSV-splits ``--mount`` values before parsing them, so such paths are
refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.render.flags import FLAVORS, FlagInfo, available, flags_for, parse_command
from hpcbridge.render.words import Arg, Var, Word, display

#: Shell variables holding the task index (hpcb_task, hpcb_task_1...): digits only.
TASK_VAR_PREFIX = "hpcb_task"
_UNSAFE_FOR_B = set(',:"\\^') | {chr(c) for c in range(32)} | {"\x7f"}


#: Shell variables of run-time marks (``{rank}``, ``$VAR``): the launcher replaces them
#: with values it checks are free of ``,`` and ``:`` (see render/runtime.py).
MARK_VAR_PREFIXES = ("hpcb_at_", "hpcb_env_")


@dataclass(frozen=True)
class BindArg:
    """One bind mount: host ``src`` to container ``dst`` (both absolute), read-only or
    not, and Apptainer's other bind options (``image-src=/dir``, ``id=N``)."""

    src: Arg
    dst: Arg
    readonly: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class OverlayArg:
    """``--overlay PATH[:ro]``: an ext3 or squashfs image file or a directory."""

    path: Arg
    readonly: bool = False


@dataclass(frozen=True)
class ContainerCall:
    """Everything the argv builder needs; independent of the job model."""

    image: str
    command: tuple[Arg, ...]  # exec: the argv; run: the runscript's arguments (may be empty)
    flavor: str = "apptainer"
    executable: str = "apptainer"
    version: Optional[str] = None
    subcommand: str = "exec"  # exec | run
    binds: tuple[BindArg, ...] = ()
    pwd: Optional[Arg] = None
    cleanenv: bool = True
    gpu: Optional[str] = None  # "nvidia" | "amd" | None
    no_home: bool = False
    writable_tmpfs: bool = False
    global_flags: tuple[Arg, ...] = ()  # before the subcommand: flag_args(...) of global flags
    extra_options: tuple[Arg, ...] = ()  # before the image: flag_args(...) of action flags
    overlays: tuple[OverlayArg, ...] = ()
    app: Optional[str] = None  # --app NAME


def env_prefix(flavor: str) -> str:
    """The variable prefix that injects container environment for ``flavor``."""
    return "SINGULARITYENV_" if flavor == "singularity" else "APPTAINERENV_"


def has_flag(flavor: str, version: Optional[str], flag: str, command: str = "exec") -> bool:
    info: Optional[FlagInfo] = flags_for(flavor, "action", command).get(flag)
    return info is not None and available(info, flavor, version) is None


def build_argv(call: ContainerCall) -> list[Arg]:
    """The full argv: ``[exe, *globals, sub, *options, image, *command]``."""
    if call.flavor not in FLAVORS:
        raise ConfigError(
            f"runtime.flavor = {call.flavor!r} is not a container runtime hpcbridge drives",
            "use 'apptainer' or 'singularity'",
        )
    if not call.command and call.subcommand == "exec":
        raise JobSpecError("the job has no command to run", 'set command = ["prog", "arg"]')
    opts: list[Arg] = []
    if call.cleanenv:
        opts.append("--cleanenv")
    if has_flag(call.flavor, call.version, "--no-eval", call.subcommand):
        # APPTAINERENV_* values are shell-evaluated inside the container otherwise
        opts.append("--no-eval")
    if call.no_home:
        opts.append("--no-home")
    if call.gpu == "nvidia":
        opts.append("--nv")
    elif call.gpu == "amd":
        opts.append("--rocm")
    elif call.gpu is not None:
        raise JobSpecError(f"gpu vendor {call.gpu!r} is not known", "use 'nvidia' or 'amd'")
    if call.writable_tmpfs:
        opts.append("--writable-tmpfs")
    if call.app is not None:
        opts.extend(["--app", call.app])
    for overlay in call.overlays:
        opts.extend(overlay_args(overlay))
    for bind in call.binds:
        opts.extend(bind_args(bind, call.flavor))
    if call.pwd is not None:
        # --pwd works on every Apptainer and SingularityCE (--cwd only from 1.3)
        opts.extend(["--pwd", call.pwd])
    opts.extend(call.extra_options)
    argv: list[Arg] = [
        call.executable,
        *call.global_flags,
        call.subcommand,
        *opts,
        call.image,
        *call.command,
    ]
    check_argv(argv, call.flavor, call.version)
    return argv


def group_argv(argv: Sequence[Arg], flavor: str) -> tuple[tuple[Arg, ...], ...]:
    """Split a runtime argv into display lines: head, one option per line, image, command."""
    sub_at = next(i for i, a in enumerate(argv) if a in ("exec", "run", "shell"))
    groups: list[tuple[Arg, ...]] = [tuple(argv[: sub_at + 1])]
    table = flags_for(flavor, "action", str(argv[sub_at]))
    i = sub_at + 1
    while i < len(argv) and isinstance(argv[i], str) and str(argv[i]).startswith("-"):
        info = table.get(str(argv[i]).split("=", 1)[0])
        if info is not None and info.takes_value and "=" not in str(argv[i]):
            groups.append((argv[i], argv[i + 1]))
            i += 2
        else:
            groups.append((argv[i],))
            i += 1
    groups.append((argv[i],))
    if argv[i + 1 :]:
        groups.append(tuple(argv[i + 1 :]))
    return tuple(groups)


def flag_args(name: str, value: object) -> list[Arg]:
    """A runtime flag by its long name and value: ``True`` -> ``["--contain"]``, a
    string/``Word`` -> ``["--workdir", value]``, an int -> ``["--pids-limit", "5"]``, a
    list -> ``["--no-mount", "tmp,home"]`` (elements free of commas)."""
    flag = "--" + name
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    if isinstance(value, int):
        return [flag, str(value)]
    if isinstance(value, (str, Word)):
        return [flag, value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        if any("," in v for v in value):
            raise JobSpecError(f"{flag}: {list(value)!r} has a value containing ','")
        return [flag, ",".join(value)]
    raise TypeError(f"flag_args: cannot write {flag} = {value!r}")


def overlay_args(overlay: OverlayArg) -> list[Arg]:
    """``["--overlay", "PATH[:ro]"]``; the path must be free of ``,``, ``:`` and ``"``
    (Apptainer CSV-splits the value and splits it on ``:``)."""
    text = _literal_text(overlay.path)
    if any(c in text for c in ',:"\n\r'):
        raise JobSpecError(
            f"overlay {display(overlay.path)!r} contains ',', ':', '\"' or a line break",
            "Apptainer's --overlay cannot take such a path; rename it",
        )
    for part in _parts(overlay.path):
        if isinstance(part, Var) and not part.name.startswith(
            (TASK_VAR_PREFIX, *MARK_VAR_PREFIXES)
        ):
            raise JobSpecError(
                f"overlay {display(overlay.path)!r}: an input path cannot name an overlay",
                "use {task} or {rank} in overlay paths",
            )
    path = overlay.path
    if overlay.readonly:
        path = Word.of(*_parts(path), ":ro")
        path = path.literal if path.is_literal else path
    return ["--overlay", path]


def check_argv(argv: Sequence[Arg], flavor: str, version: Optional[str]) -> None:
    """Refuse a flag the configured runtime/version does not have (render-time check)."""
    parse_command([display(a) for a in argv], flavor, version)


def bind_args(bind: BindArg, flavor: str) -> list[Arg]:
    """``["-B", "src:dst[:ro]"]`` or ``["--mount", "type=bind,..."]`` for one bind."""
    for what, value in (("source", bind.src), ("destination", bind.dst)):
        text = display(value)
        first = _parts(value)[0] if _parts(value) else ""
        # a value starting with a per-task variable starts with an (absolute) input path
        if isinstance(first, str) and not text.startswith("/"):
            raise JobSpecError(
                f"bind {what} {text!r} is not an absolute path", "write it starting with /"
            )
        if "\n" in _literal_text(value) or "\r" in _literal_text(value):
            raise JobSpecError(
                f"bind {what} {text!r} contains a line break", "rename the directory"
            )
    options = (("ro",) if bind.readonly else ()) + bind.options
    if all(_plain(v) for v in (bind.src, bind.dst)):
        parts: list[str | Var] = [*_parts(bind.src), ":", *_parts(bind.dst)]
        if options:
            parts.append(":" + ",".join(options))
        spec = Word.of(*parts)
        return ["-B", spec.literal if spec.is_literal else spec]
    if flavor == "singularity":
        raise JobSpecError(
            f"bind {display(bind.src)!r} -> {display(bind.dst)!r}: SingularityCE cannot bind "
            "paths containing ',', ':', '\"', '\\' or control characters (or per-task paths)",
            "rename the directory, or use runtime.flavor = 'apptainer'",
        )
    fields: list[Word] = [
        Word.of("type=bind"),
        _csv_field("source=", bind.src),
        _csv_field("destination=", bind.dst),
    ]
    fields.extend(Word.of(o) if o == "ro" else _csv_field("", o) for o in options)
    parts = []
    for n, f in enumerate(fields):
        if n:
            parts.append(",")
        parts.extend(f.parts)
    word = Word.of(*parts)
    return ["--mount", word.literal if word.is_literal else word]


def _parts(value: Arg) -> tuple[str | Var, ...]:
    return (value,) if isinstance(value, str) else value.parts


def _plain(value: Arg) -> bool:
    """Safe in a ``-B`` spec: no ``,``/``:``/quote/backslash/control characters, and
    per-task parts only from the task index (digits, maybe padded)."""
    for part in _parts(value):
        if isinstance(part, Var):
            if not part.name.startswith((TASK_VAR_PREFIX, *MARK_VAR_PREFIXES)):
                return False
        elif set(part) & _UNSAFE_FOR_B:
            return False
    return True


def _literal_text(value: Arg) -> str:
    if isinstance(value, str):
        return value
    return "".join(p for p in value.parts if isinstance(p, str))


def _csv_field(key: str, value: Arg) -> Word:
    """``"key=value"`` as one CSV field, quoted (inner ``"`` doubled).

    Variable parts are per-task values the caller has checked contain no ``"``
    and no line break, so they need no CSV escaping.
    """
    if isinstance(value, str):
        return Word.of('"' + key + value.replace('"', '""') + '"')
    parts: list[str | Var] = ['"' + key]
    for p in value.parts:
        parts.append(p.replace('"', '""') if isinstance(p, str) else p)
    parts.append('"')
    return Word.of(*parts)
