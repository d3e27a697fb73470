"""The small value languages of job files: per-task placeholders, signal specs and
"did you mean" hints (pure, no I/O).

Slurm's own value syntax (time limits, memory sizes, array specs) lives in
:mod:`hpcbridge.slurm_syntax`.  Every parser raises
:class:`~hpcbridge.errors.JobSpecError` whose message names the value and whose
hint names the fix.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

from hpcbridge.errors import JobSpecError
from hpcbridge.slurm_syntax import SIGNAL_NUMBERS

#: An environment variable name (job ``env`` keys, the site's ``env.allow`` and MPI
#: variable tables).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The closest match of ``word`` among ``choices`` (difflib), or None."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_hint(word: str, choices: Iterable[str], what: str = "valid keys") -> str:
    """A hint ``did you mean 'x'? valid keys: a, b, c``."""
    names = sorted(choices)
    best = closest(word, names)
    lead = f"did you mean {best!r}? " if best else ""
    return f"{lead}{what}: {', '.join(names)}"


# ------------------------------------------------------------------------- signal


def parse_signal(value: object, what: str = "signal") -> str:
    """Validate an ``sbatch --signal`` value: ``[B:|R:]SIG[@SECONDS]``; returns it canonical."""
    fix = 'write e.g. "USR1@60" (signal name or number, @ seconds before the time limit)'
    if not isinstance(value, str):
        raise JobSpecError(f"{what} = {value!r} is not a signal spec", fix)
    m = re.fullmatch(r"(?:([BR]):)?(?:SIG)?([A-Z0-9]+)(?:@(\d+))?", value.strip().upper())
    if not m:
        raise JobSpecError(f"{what} = {value!r} is not a signal spec", fix)
    prefix, sig, secs = m.groups()
    if sig.isdigit():
        if not 1 <= int(sig) <= 64:
            raise JobSpecError(f"{what} = {value!r}: signal number {sig} is out of range", fix)
    elif sig not in SIGNAL_NUMBERS:
        raise JobSpecError(
            f"{what} = {value!r}: unknown signal {sig!r}",
            unknown_hint(sig, SIGNAL_NUMBERS, "signals"),
        )
    if secs is not None and int(secs) > 65535:
        raise JobSpecError(f"{what} = {value!r}: {secs} s is above Slurm's 65535", fix)
    out = sig if secs is None else f"{sig}@{int(secs)}"
    return f"{prefix}:{out}" if prefix else out


# ------------------------------------------------------------------- placeholders

#: Per-task placeholders: ``{task}`` is the global array index (int); ``{input}``
#: the task's input path, ``{input_name}`` its file name, ``{input_stem}`` the file
#: name without its last suffix (strings).  Per-rank placeholders, known only to
#: each rank on its node: ``{rank}`` (``SLURM_PROCID``; the MPI rank under mpirun),
#: ``{local_rank}`` (``SLURM_LOCALID``), ``{node}`` (``SLURMD_NODENAME``).
TASK_FIELDS = ("task",)
INPUT_FIELDS = ("input", "input_name", "input_stem")
RANK_FIELDS = ("rank", "local_rank", "node")
PLACEHOLDERS = TASK_FIELDS + INPUT_FIELDS + RANK_FIELDS


@dataclass(frozen=True)
class Field:
    """One placeholder in a template string: name and Python format spec."""

    name: str
    spec: str = ""


@dataclass(frozen=True)
class EnvRef:
    """``$NAME`` or ``${NAME}`` in a host path: the variable's value on the node,
    read by each task (rank) when it starts, never on the login node."""

    name: str


TemplatePart = Union[str, Field, EnvRef]

_DOLLAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))?")


def parse_template(
    text: str, what: str, allowed: Sequence[str] = PLACEHOLDERS, *, env_refs: bool = False
) -> tuple[TemplatePart, ...]:
    """Split ``text`` into literal strings, :class:`Field` placeholders and, with
    ``env_refs``, :class:`EnvRef` variables (``$$`` is a literal ``$``).

    ``{{`` and ``}}`` are literal braces.  Unknown placeholders, conversions
    (``!r``), attribute/index access and invalid format specs are errors naming them.
    """
    if not env_refs:
        return _merge(_parse_fields(text, what, allowed))
    parts: list[TemplatePart] = []
    at = 0
    for m in _DOLLAR.finditer(text):
        parts.extend(_parse_fields(text[at : m.start()], what, allowed, whole=text))
        at = m.end()
        if m.group(1):
            parts.append("$")
        elif m.group(2) or m.group(3):
            parts.append(EnvRef(m.group(2) or m.group(3)))
        else:
            raise JobSpecError(
                f"{what} = {text!r}: '$' must start a variable, $NAME or ${{NAME}}",
                "write $$ for a literal $",
            )
    parts.extend(_parse_fields(text[at:], what, allowed, whole=text))
    return _merge(parts)


def _merge(parts: Iterable[TemplatePart]) -> tuple[TemplatePart, ...]:
    out: list[TemplatePart] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return tuple(out)


def _parse_fields(
    text: str, what: str, allowed: Sequence[str], whole: Optional[str] = None
) -> list[TemplatePart]:
    shown = text if whole is None else whole
    escape = "write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise JobSpecError(f"{what} = {shown!r}: {exc}", escape) from None
    parts: list[TemplatePart] = []
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise JobSpecError(
                f"{what} = {shown!r}: unknown placeholder {{{name}}}",
                f"{unknown_hint(name, allowed, 'placeholders here')}; {escape}",
            )
        if name not in allowed:
            raise JobSpecError(
                f"{what} = {shown!r}: placeholder {{{name}}} is not available here",
                (f"placeholders here: {', '.join(allowed)}" if allowed else "no placeholders")
                + f"; {escape}",
            )
        if conversion:
            raise JobSpecError(
                f"{what} = {shown!r}: conversion !{conversion} in {{{name}}} is not supported",
                f"write {{{name}}} or {{{name}:FORMAT}}",
            )
        parts.append(Field(name, _checked_spec(name, spec or "", shown, what)))
    return parts


def _checked_spec(name: str, spec: str, shown: str, what: str) -> str:
    escape = "write {{ and }} for literal braces"
    if "{" in spec:
        raise JobSpecError(f"{what} = {shown!r}: nested placeholder in {{{name}}}", escape)
    if spec and name in RANK_FIELDS:
        raise JobSpecError(
            f"{what} = {shown!r}: {{{name}:{spec}}} takes no format",
            f"write {{{name}}}; only {{task}} takes a format",
        )
    sample: object = 0 if name in TASK_FIELDS else "x"
    try:
        format(sample, spec)
    except (ValueError, TypeError):
        raise JobSpecError(
            f"{what} = {shown!r}: invalid format {spec!r} for {{{name}}}",
            "e.g. {task:04d}" if name in TASK_FIELDS else f"write {{{name}}}",
        ) from None
    return spec


def is_run_time(parts: Iterable[TemplatePart]) -> bool:
    """Whether a template needs values only the task on its node knows (a ``$VAR`` or
    a per-rank placeholder)."""
    return any(
        isinstance(p, EnvRef) or (isinstance(p, Field) and p.name in RANK_FIELDS) for p in parts
    )


def input_fields(path: str) -> dict[str, str]:
    """``{input}``, ``{input_name}``, ``{input_stem}`` of one input path: its file name,
    and that name without its last suffix (a leading dot is not a suffix)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return {"input": path, "input_name": name, "input_stem": stem}


def expand(
    text: str,
    task: int,
    input_path: Optional[str] = None,
    *,
    rank: Optional[Mapping[str, str]] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> str:
    """Expand the placeholders of ``text`` for one task (and, given ``rank`` values and
    ``environ``, one rank): the meaning the rendered script reproduces in bash (the
    tests compare the two)."""
    out: list[str] = []
    for part in parse_template(text, "template", env_refs=environ is not None):
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, EnvRef):
            out.append((environ or {})[part.name])
        elif part.name == "task":
            out.append(format(task, part.spec))
        elif part.name in RANK_FIELDS:
            if rank is None:
                raise JobSpecError(f"{{{part.name}}} is known only on the node", "give rank")
            out.append(rank[part.name])
        elif input_path is None:
            raise JobSpecError(f"{{{part.name}}} used but the job has no inputs", "set inputs")
        else:
            out.append(format(input_fields(input_path)[part.name], part.spec))
    return "".join(out)
