"""Pure parsers for the small value languages of job files and site configs.

Slurm time strings, memory sizes, array specs, signal specs, per-task placeholders
and "did you mean" suggestions.  No I/O.  Every parser raises
:class:`~hpcbridge.errors.JobSpecError` (or a caller-chosen subclass) whose
message names the value and whose hint names the fix.
"""

from __future__ import annotations

import datetime
import difflib
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional, Union

from hpcbridge.errors import InputError, JobSpecError

#: Upper bound of tasks hpcbridge will expand for one array (Slurm's own limit is
#: MaxArraySize, read by the submitter; larger arrays are split into chunks there).
MAX_TASKS = 1_000_000
#: Largest array index accepted (Slurm's hard ceiling on MaxArraySize is 4000001).
MAX_INDEX = 4_000_000


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


# --------------------------------------------------------------------------- time

_TIME_FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def parse_time(value: object, what: str = "time", error: type[InputError] = JobSpecError) -> int:
    """Parse a Slurm time limit into seconds.

    Accepts every form ``sbatch --time`` accepts: ``MM``, ``MM:SS``, ``HH:MM:SS``,
    ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``; an integer means minutes (as in Slurm);
    a TOML time-of-day (``time = 01:30:00`` unquoted) means hours:minutes:seconds.
    ``UNLIMITED`` is refused for jobs (ask for a number).
    """
    if isinstance(value, bool):
        raise error(f"{what} = {value!r} is not a time limit", f"use one of {_TIME_FORMS}")
    if isinstance(value, int):
        seconds = value * 60
    elif isinstance(value, datetime.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
    elif isinstance(value, str):
        seconds = _parse_time_text(value.strip(), what, error)
    else:
        raise error(f"{what} = {value!r} is not a time limit", f"use one of {_TIME_FORMS}")
    if seconds <= 0:
        raise error(f"{what} = {value!r} is not a positive time limit", "ask for at least 1 minute")
    return seconds


def _parse_time_text(text: str, what: str, error: type[InputError]) -> int:
    bad = error(f"{what} = {text!r} is not a Slurm time limit", f"use one of {_TIME_FORMS}")
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise bad
    days_s, a, b, c = m.groups()
    if days_s is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS
        days, hours = int(days_s), int(a)
        minutes = int(b) if b is not None else 0
        seconds = int(c) if c is not None else 0
    elif c is not None:
        days, hours, minutes, seconds = 0, int(a), int(b or 0), int(c)
    elif b is not None:
        days, hours, minutes, seconds = 0, 0, int(a), int(b)
    else:
        days, hours, minutes, seconds = 0, 0, int(a), 0
    if days_s is not None and hours > 23:
        raise bad
    # in a colon form, every field after the first is a clock field (< 60)
    if (c is not None and (minutes > 59 or seconds > 59)) or (
        b is not None and c is None and days_s is None and seconds > 59
    ):
        raise bad
    if days_s is not None and b is not None and minutes > 59:
        raise bad
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_time(seconds: int) -> str:
    """Canonical Slurm form: ``HH:MM:SS``, or ``D-HH:MM:SS`` from one day on.

    Seconds are kept (Slurm rounds up to whole minutes itself).
    """
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    hms = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{hms}" if days else hms


# ------------------------------------------------------------------------- memory

_MEM_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_mem(value: object, what: str = "mem", error: type[InputError] = JobSpecError) -> int:
    """Parse a Slurm memory size into MiB (``4G`` -> 4096, ``500M`` -> 500).

    Units K, M, G, T (powers of 1024, optional trailing ``B``/``iB``); a bare
    number means megabytes, as in Slurm.  Sizes round up to whole MiB.
    """
    fix = "write a size like 500M, 4G or 1T (a bare number means megabytes)"
    if isinstance(value, bool):
        raise error(f"{what} = {value!r} is not a memory size", fix)
    if isinstance(value, int):
        mib = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", value)
        if not m:
            raise error(f"{what} = {value!r} is not a memory size", fix)
        mib = float(m.group(1)) * _MEM_UNITS[(m.group(2) or "M").upper()]
    else:
        raise error(f"{what} = {value!r} is not a memory size", fix)
    result = int(mib) if mib == int(mib) else int(mib) + 1
    if result <= 0:
        raise error(f"{what} = {value!r} is not a positive memory size", fix)
    return result


def format_mem(mib: int) -> str:
    """Canonical Slurm size: ``4G`` when a whole number of GiB, else ``500M``."""
    if mib % (1024 * 1024) == 0:
        return f"{mib // (1024 * 1024)}T"
    if mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"


# -------------------------------------------------------------------------- array


@dataclass(frozen=True)
class ArraySpec:
    """A parsed Slurm array spec: the task indices and an optional ``%throttle``."""

    indices: tuple[int, ...]  # sorted, unique
    throttle: Optional[int] = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def spec(self) -> str:
        """Canonical ``sbatch --array`` value (ranges compressed, ``%N`` appended)."""
        text = compress_indices(self.indices)
        return f"{text}%{self.throttle}" if self.throttle else text

    def __str__(self) -> str:
        return self.spec


def parse_array(value: object, what: str = "array") -> ArraySpec:
    """Parse ``"0-99:2%10"``, ``"1,3,5-7"``, ``"7"`` or an integer list.

    Indices must be non-negative, ranges ascending, steps and throttle positive.
    """
    fix = 'write indices like "0-99", "0-99:2%10" or "1,3,5-7"'
    if isinstance(value, list):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise JobSpecError(f"{what} = {value!r} is not a list of task indices", fix)
        return _array_from(value, None, what, fix)
    if isinstance(value, int) and not isinstance(value, bool):
        return _array_from([value], None, what, fix)
    if not isinstance(value, str):
        raise JobSpecError(f"{what} = {value!r} is not an array spec", fix)
    text = value.strip().replace(" ", "")
    throttle: Optional[int] = None
    if "%" in text:
        text, _, thr = text.partition("%")
        if not thr.isdigit() or int(thr) <= 0:
            raise JobSpecError(
                f"{what} = {value!r} has an invalid throttle {'%' + thr!r}",
                "the part after % must be a positive number of tasks running at once",
            )
        throttle = int(thr)
    if not text:
        raise JobSpecError(f"{what} = {value!r} has no indices", fix)
    indices: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            raise JobSpecError(f"{what} = {value!r}: {part!r} is not an index or range", fix)
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3)) if m.group(3) is not None else 1
        if end < start:
            raise JobSpecError(
                f"{what} = {value!r}: range {part!r} ends before it starts",
                f"write {end}-{start}",
            )
        if step <= 0:
            raise JobSpecError(f"{what} = {value!r}: step in {part!r} must be positive", fix)
        if end > MAX_INDEX:
            raise JobSpecError(
                f"{what} = {value!r}: index {end} is above {MAX_INDEX}", "use smaller indices"
            )
        if (end - start) // step + 1 + len(indices) > MAX_TASKS:
            raise JobSpecError(
                f"{what} = {value!r} has more than {MAX_TASKS} tasks", "split the work"
            )
        indices.extend(range(start, end + 1, step))
    return _array_from(indices, throttle, what, fix)


def _array_from(indices: Sequence[int], throttle: Optional[int], what: str, fix: str) -> ArraySpec:
    if any(i < 0 or i > MAX_INDEX for i in indices):
        raise JobSpecError(f"{what} = {list(indices)!r} has an index out of range", fix)
    return ArraySpec(tuple(sorted(set(indices))), throttle)


def compress_indices(indices: Iterable[int]) -> str:
    """``[0,1,2,3,5,7,8,9]`` -> ``"0-3,5,7-9"`` (sorted, duplicates dropped)."""
    ordered = sorted(set(indices))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# ------------------------------------------------------------------------- signal

_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "ALRM": 14,
    "TERM": 15, "CONT": 18, "STOP": 19, "TSTP": 20, "URG": 23, "XCPU": 24,
}  # fmt: skip


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
    elif sig not in _SIGNALS:
        raise JobSpecError(
            f"{what} = {value!r}: unknown signal {sig!r}", unknown_hint(sig, _SIGNALS, "signals")
        )
    if secs is not None and int(secs) > 65535:
        raise JobSpecError(f"{what} = {value!r}: {secs} s is above Slurm's 65535", fix)
    out = sig if secs is None else f"{sig}@{int(secs)}"
    return f"{prefix}:{out}" if prefix else out


# ------------------------------------------------------------------- placeholders

#: Per-task placeholders: ``{task}`` is the global array index (int); ``{input}``
#: the task's input path, ``{input_name}`` its file name, ``{input_stem}`` the file
#: name without its last suffix (strings).
TASK_FIELDS = ("task",)
INPUT_FIELDS = ("input", "input_name", "input_stem")
PLACEHOLDERS = TASK_FIELDS + INPUT_FIELDS


@dataclass(frozen=True)
class Field:
    """One placeholder in a template string: name and Python format spec."""

    name: str
    spec: str = ""


TemplatePart = Union[str, Field]


def parse_template(
    text: str, what: str, allowed: Sequence[str] = PLACEHOLDERS
) -> tuple[TemplatePart, ...]:
    """Split ``text`` into literal strings and :class:`Field` placeholders.

    ``{{`` and ``}}`` are literal braces.  Unknown placeholders, conversions
    (``!r``), attribute/index access and invalid format specs are errors naming them.
    """
    escape = "write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise JobSpecError(f"{what} = {text!r}: {exc}", escape) from None
    parts: list[TemplatePart] = []
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise JobSpecError(
                f"{what} = {text!r}: unknown placeholder {{{name}}}",
                f"{unknown_hint(name, allowed, 'placeholders here')}; {escape}",
            )
        if name not in allowed:
            raise JobSpecError(
                f"{what} = {text!r}: placeholder {{{name}}} is not available here",
                (f"placeholders here: {', '.join(allowed)}" if allowed else "no placeholders")
                + f"; {escape}",
            )
        if conversion:
            raise JobSpecError(
                f"{what} = {text!r}: conversion !{conversion} in {{{name}}} is not supported",
                f"write {{{name}}} or {{{name}:FORMAT}}",
            )
        spec = spec or ""
        if "{" in spec:
            raise JobSpecError(f"{what} = {text!r}: nested placeholder in {{{name}}}", escape)
        sample: object = 0 if name in TASK_FIELDS else "x"
        try:
            format(sample, spec)
        except (ValueError, TypeError):
            raise JobSpecError(
                f"{what} = {text!r}: invalid format {spec!r} for {{{name}}}",
                "e.g. {task:04d}" if name in TASK_FIELDS else f"write {{{name}}}",
            ) from None
        parts.append(Field(name, spec))
    return tuple(parts)


def template_fields(text: str) -> tuple[Field, ...]:
    """The placeholders of an already-validated template string."""
    return tuple(p for p in parse_template(text, "template") if isinstance(p, Field))


def expand(text: str, task: int, input_path: Optional[str] = None) -> str:
    """Expand the placeholders of ``text`` for one task (pure; for tests, tools and docs)."""
    out: list[str] = []
    for part in parse_template(text, "template"):
        if isinstance(part, str):
            out.append(part)
            continue
        if part.name == "task":
            out.append(format(task, part.spec))
            continue
        if input_path is None:
            raise JobSpecError(f"{{{part.name}}} used but the job has no inputs", "set inputs")
        name = input_path.rstrip("/").rsplit("/", 1)[-1]
        value = {
            "input": input_path,
            "input_name": name,
            "input_stem": name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name,
        }[part.name]
        out.append(format(value, part.spec))
    return "".join(out)


def has_placeholders(text: str) -> bool:
    return any(isinstance(p, Field) for p in parse_template(text, "template"))
