"""Slurm's value syntax: time limits, memory sizes, array index lists, signal numbers.

One table per fact, in a leaf module (it imports only :mod:`hpcbridge.errors`):
the job model reads job files with it, the site configuration its partition
limits, the renderer writes ``#SBATCH`` values with it and the scheduler code
reads the index lists ``squeue``/``sacct`` print.  Pure, no I/O.

Strict parsers (:func:`parse_time`, :func:`parse_mem`, :func:`parse_array`) raise
a caller-chosen :class:`~hpcbridge.errors.InputError` subclass (default
:class:`~hpcbridge.errors.JobSpecError`) whose message names the value and whose
hint names the fix; :func:`parse_indices` reads scheduler output and answers None
instead.  ``format_*`` write the one canonical form hpcbridge emits.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import InputError, JobSpecError

# --------------------------------------------------------------------------- time

#: Every form ``sbatch --time`` accepts.
TIME_FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
#: Words Slurm uses for "no time limit" (``scontrol show partition`` prints UNLIMITED).
UNLIMITED = ("UNLIMITED", "INFINITE")
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def parse_time(value: object, what: str = "time", error: type[InputError] = JobSpecError) -> int:
    """Parse a Slurm time limit into seconds.

    Accepts every form of :data:`TIME_FORMS`; an integer means minutes (as in
    Slurm); a TOML time-of-day (``time = 01:30:00`` unquoted) means
    hours:minutes:seconds.  ``UNLIMITED`` is refused here (see
    :func:`parse_time_limit`).
    """
    if isinstance(value, bool):
        raise error(f"{what} = {value!r} is not a time limit", f"use one of {TIME_FORMS}")
    if isinstance(value, int):
        seconds = value * 60
    elif isinstance(value, datetime.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
    elif isinstance(value, str):
        seconds = _parse_time_text(value.strip(), what, error)
    else:
        raise error(f"{what} = {value!r} is not a time limit", f"use one of {TIME_FORMS}")
    if seconds <= 0:
        raise error(f"{what} = {value!r} is not a positive time limit", "ask for at least 1 minute")
    return seconds


def parse_time_limit(
    value: object, what: str = "time", error: type[InputError] = JobSpecError
) -> Optional[int]:
    """:func:`parse_time`, or None for one of the :data:`UNLIMITED` words."""
    if isinstance(value, str) and value.strip().upper() in UNLIMITED:
        return None
    return parse_time(value, what, error)


def _parse_time_text(text: str, what: str, error: type[InputError]) -> int:
    """One of :data:`TIME_FORMS`.  Slurm puts no upper bound on any field (verified
    with sbatch 22.05: ``0-47:00:00``, ``1:90:00`` and ``0:75`` are accepted as 47 h,
    2 h 30 min and 75 s), so neither does hpcbridge: the fields are summed."""
    m = _TIME.fullmatch(text)
    if not m:
        raise error(f"{what} = {text!r} is not a Slurm time limit", f"use one of {TIME_FORMS}")
    days_s, a, b, c = m.groups()
    if days_s is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        days, hours, minutes, seconds = int(days_s), int(a), int(b or 0), int(c or 0)
    elif c is not None:  # HH:MM:SS
        days, hours, minutes, seconds = 0, int(a), int(b or 0), int(c)
    elif b is not None:  # MM:SS
        days, hours, minutes, seconds = 0, 0, int(a), int(b)
    else:  # MM
        days, hours, minutes, seconds = 0, 0, int(a), 0
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

#: Slurm's memory units in MiB (powers of 1024); a bare number means megabytes.
MEM_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*")


def parse_mem(value: object, what: str = "mem", error: type[InputError] = JobSpecError) -> int:
    """Parse a Slurm memory size into MiB (``4G`` -> 4096, ``500M`` -> 500).

    Units of :data:`MEM_UNITS` (optional trailing ``B``/``iB``); a bare number
    means megabytes, as in Slurm.  Sizes round up to whole MiB.
    """
    fix = "write a size like 500M, 4G or 1T (a bare number means megabytes)"
    if isinstance(value, bool):
        raise error(f"{what} = {value!r} is not a memory size", fix)
    if isinstance(value, int):
        mib = float(value)
    elif isinstance(value, str):
        m = _MEM.fullmatch(value)
        if not m:
            raise error(f"{what} = {value!r} is not a memory size", fix)
        mib = float(m.group(1)) * MEM_UNITS[(m.group(2) or "M").upper()]
    else:
        raise error(f"{what} = {value!r} is not a memory size", fix)
    result = int(mib) if mib == int(mib) else int(mib) + 1
    if result <= 0:
        raise error(f"{what} = {value!r} is not a positive memory size", fix)
    return result


def format_mem(mib: int) -> str:
    """Canonical Slurm size: the largest unit of :data:`MEM_UNITS` that divides it
    (``2T``, ``4G``, ``500M``)."""
    for unit in ("T", "G"):
        size = int(MEM_UNITS[unit])
        if mib % size == 0:
            return f"{mib // size}{unit}"
    return f"{mib}M"


# ---------------------------------------------------------------- array indices

#: Upper bound of tasks hpcbridge will expand for one array (Slurm's own limit is
#: MaxArraySize, read by the submitter; larger arrays are split into chunks there).
MAX_TASKS = 1_000_000
#: Largest array index accepted (Slurm's hard ceiling on MaxArraySize is 4000001).
MAX_INDEX = 4_000_000
#: One element of an index list: ``N``, ``A-B`` or ``A-B:STEP``.
_RANGE = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


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
        text = format_indices(self.indices)
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
        m = _RANGE.fullmatch(part)
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


def parse_indices(spec: str) -> Optional[tuple[int, ...]]:
    """An index list as the scheduler prints it -> sorted indices; None when it is none.

    ``"1,3,5-7:2%4"`` and ``"[1-3]"`` (squeue's pending-task form) are read; a
    throttle is dropped.  For scheduler output: never raises.
    """
    text = spec.strip().split("%", 1)[0].strip().strip("[]").replace(" ", "")
    if not text:
        return None
    try:
        return parse_array(text, "indices").indices
    except JobSpecError:
        return None


def format_indices(indices: Iterable[int]) -> str:
    """``[0,1,2,3,5,7,8,9]`` -> ``"0-3,5,7-9"``: the shortest range list
    (``--array`` syntax; sorted, duplicates dropped)."""
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


# ------------------------------------------------------------------------ signals

#: Signal names Slurm accepts in ``--signal`` (and hpcbridge traps) with their
#: numbers on Linux x86-64/aarch64.
SIGNAL_NUMBERS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "ALRM": 14,
    "TERM": 15, "CONT": 18, "STOP": 19, "TSTP": 20, "URG": 23, "XCPU": 24,
}  # fmt: skip


# ------------------------------------------------------------- srun --mpi, options

#: MPI plugin types ``srun --mpi=list`` shows on Slurm 20.11 to 26.05 (the testbed's
#: 22.05: pmix, none, cray_shasta, pmi2 and ``pmix_v4``; Debian's 26.05: none,
#: cray_shasta, pmi2).  ``pmix`` also comes versioned: ``pmix_v3``, ``pmix_v4``...
#: A site names its own in ``mpi.pmi_types``; this table is the fallback.
SRUN_MPI_PLUGINS = ("none", "pmi2", "pmix", "pmix_vN", "cray_shasta")
#: The form of an MPI plugin name.
PMI_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PMIX_VERSIONED = re.compile(r"pmix_v[0-9]+")


def pmi_family(name: str) -> str:
    """``pmix`` for ``pmix``/``pmix_v4``..., else the name itself."""
    return "pmix" if _PMIX_VERSIONED.fullmatch(name) else name


def check_pmi(
    value: object,
    what: str,
    allowed: Optional[Sequence[str]] = None,
    error: type[InputError] = JobSpecError,
) -> str:
    """An ``srun --mpi=`` value: a plugin name, one of ``allowed`` (the site's list)
    when given, else one of :data:`SRUN_MPI_PLUGINS`."""
    if not isinstance(value, str) or not PMI_NAME.fullmatch(value):
        raise error(
            f"{what} = {value!r} is not an srun MPI plugin name",
            "write a name srun --mpi=list shows, e.g. pmix, pmi2, cray_shasta or none",
        )
    if allowed is not None:
        if value not in allowed:
            raise error(
                f"{what} = {value!r} is not a PMI type this site offers",
                _hint(value, allowed, "the site's mpi.pmi_types (srun --mpi=list)"),
            )
        return value
    if value not in SRUN_MPI_PLUGINS and not _PMIX_VERSIONED.fullmatch(value):
        raise error(
            f"{what} = {value!r} is not an srun MPI plugin",
            _hint(value, SRUN_MPI_PLUGINS, "srun --mpi= takes"),
        )
    return value


#: srun options a job file may not pass (``mpi.srun_options``): hpcbridge sets them
#: itself, or a job key says them.
SRUN_OWNED_OPTIONS = {
    "mpi": "mpi.pmi", "nodes": "resources.nodes", "ntasks": "resources.ntasks",
    "ntasks-per-node": "resources.ntasks_per_node", "cpus-per-task": "resources.cpus_per_task",
    "export": "nothing: hpcbridge forwards the task environment itself",
    "job-name": "name", "output": "output", "error": "error", "input": "nothing",
    "partition": "resources.partition", "time": "resources.time", "chdir": "pwd",
    "container": "nothing: the job already runs in a container",
    "kill-on-bad-exit": "nothing: hpcbridge sets it when the job has run-time checks",
}  # fmt: skip
_SRUN_OPTION = re.compile(r"--([a-z][a-z0-9-]*)(?:=(.*))?", re.S)


def parse_srun_option(
    value: object, what: str, allowed: Optional[Sequence[str]] = None
) -> tuple[str, Optional[str]]:
    """``--name[=value]`` -> (name, value); refuses short options, owned names and, with
    ``allowed`` (the site's ``mpi.srun_options``), names outside it."""
    fix = 'write the long form with "=", e.g. "--cpu-bind=mask_cpu:0x1,0x2"'
    m = _SRUN_OPTION.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise JobSpecError(f"{what} = {value!r} is not an srun option", fix)
    name, arg = m.group(1), m.group(2)
    if arg is not None and any(c in arg for c in "\n\r\x00"):
        raise JobSpecError(f"{what} = {value!r} contains a line break", "write it on one line")
    if name in SRUN_OWNED_OPTIONS:
        raise JobSpecError(
            f"{what} = {value!r} sets srun --{name}", f"use {SRUN_OWNED_OPTIONS[name]} instead"
        )
    if allowed is not None and name not in allowed:
        raise JobSpecError(
            f"{what} = {value!r}: this site does not allow srun --{name}",
            _hint(name, allowed, "the site's mpi.srun_options"),
        )
    return name, arg


def _hint(word: str, choices: Sequence[str], what: str) -> str:
    best = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    lead = f"did you mean {best[0]!r}? " if best else ""
    return f"{lead}{what}: {', '.join(choices) or '(none)'}"
