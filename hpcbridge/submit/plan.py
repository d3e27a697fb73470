"""Pure planning for submissions: array chunks and resubmission resources.

Slurm's ``MaxArraySize`` caps the array INDEX (``--array=1001-2000`` is refused
when MaxArraySize is 1001), not only the count, so a large array becomes chunks
whose local indices start at 0: chunk ``k`` runs local ``0..n`` with an index
offset, and each task still sees its global index (``SLURM_ARRAY_TASK_ID +
offset``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import InputError
from hpcbridge.report.attempt import MIB, Attempt
from hpcbridge.report.sizing import after_oom, after_timeout
from hpcbridge.slurm_syntax import (
    format_indices,
    format_mem,
    format_time,
    parse_mem,
    parse_time,
)


@dataclass(frozen=True)
class Chunk:
    offset: int
    local: tuple[int, ...]  # local indices, each < max_array_size

    @property
    def tasks(self) -> tuple[int, ...]:
        return tuple(i + self.offset for i in self.local)

    @property
    def spec(self) -> str:
        return format_indices(self.local)


def plan_chunks(
    tasks: Iterable[int], *, max_array_size: int, max_tasks: Optional[int] = None
) -> list[Chunk]:
    """Split global task indices into chunks with local indices below ``max_array_size``
    (and at most ``max_tasks`` tasks each)."""
    if max_array_size < 1:
        raise InputError(f"MaxArraySize = {max_array_size} leaves no room for an array")
    cap = max_array_size if max_tasks is None else max(1, min(max_tasks, max_array_size))
    ordered = sorted(set(tasks))
    chunks: list[Chunk] = []
    i = 0
    while i < len(ordered):
        # keep small indices as they are (offset 0) when they fit
        offset = 0 if not chunks and ordered[i] < max_array_size else ordered[i]
        local: list[int] = []
        while i < len(ordered) and ordered[i] - offset < max_array_size and len(local) < cap:
            local.append(ordered[i] - offset)
            i += 1
        chunks.append(Chunk(offset, tuple(local)))
    return chunks


# ------------------------------------------------------------------ resubmission


def new_mem(spec: Optional[str], current: Optional[int]) -> Optional[int]:
    """``--mem``: ``+50%`` of the current MiB, ``x2``, or an absolute size (``8G``)."""
    if spec is None:
        return None
    text = spec.strip()
    if text.startswith("+") and text.endswith("%"):
        factor = 1 + _number(text[1:-1], "--mem") / 100
    elif text[:1] in ("x", "*"):
        factor = _number(text[1:], "--mem")
    else:
        return parse_mem(text, "--mem", InputError)
    if current is None:
        raise InputError(
            f"--mem {spec}: the job asked for no memory, so there is nothing to scale",
            "give an absolute size, e.g. --mem 8G",
        )
    return max(1, math.ceil(current * factor))


def new_time(spec: Optional[str], current: Optional[int]) -> Optional[int]:
    """``--time``: ``x2`` of the current seconds, ``+50%``, or a limit (``02:00:00``)."""
    if spec is None:
        return None
    text = spec.strip()
    if text[:1] in ("x", "*"):
        factor = _number(text[1:], "--time")
    elif text.startswith("+") and text.endswith("%"):
        factor = 1 + _number(text[1:-1], "--time") / 100
    else:
        return parse_time(text, "--time", InputError)
    if current is None:
        raise InputError(
            f"--time {spec}: the job's time limit is unknown, so there is nothing to scale",
            "give a limit, e.g. --time 02:00:00",
        )
    return max(60, math.ceil(current * factor / 60) * 60)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"{what}: {text!r} is not a number", "use +50%, x2 or an absolute value"
        ) from None
    if value <= 0:
        raise InputError(f"{what}: {text!r} must be positive")
    return value


def resubmit_groups(
    failed: Sequence[tuple[int, str]],
    *,
    mem: Optional[str],
    time: Optional[str],
) -> dict[tuple[bool, bool], list[int]]:
    """Failed (task, state) -> groups keyed by (more memory?, more time?).

    With an explicit ``--mem``/``--time`` every task gets it; otherwise tasks
    that ran out of memory get more memory and tasks that timed out more time.
    """
    groups: dict[tuple[bool, bool], list[int]] = {}
    for task, state in failed:
        more_mem = mem is not None or state == "OUT_OF_MEMORY"
        more_time = time is not None or state == "TIMEOUT"
        groups.setdefault((more_mem, more_time), []).append(task)
    return groups


@dataclass(frozen=True)
class Sizing:
    """The resources one failed task is resubmitted with (None: the job's own) and why."""

    mem: Optional[int] = None  # MiB
    time: Optional[int] = None  # seconds
    why: tuple[str, ...] = ()


def resubmit_sizes(
    failed: Sequence[tuple[int, str]],
    measured: Mapping[int, Attempt],
    *,
    mem: Optional[str],
    time: Optional[str],
    job_mem: Optional[int],
    job_time: Optional[int],
) -> dict[int, Sizing]:
    """Each failed task's resources.  ``--mem``/``--time`` apply to every task; otherwise a
    task that ran out of memory gets its measured peak plus a margin and a task that timed
    out twice its measured elapsed time (:mod:`hpcbridge.report.sizing`), from its latest
    attempt in ``measured``; with nothing measured, +50 % memory / twice the time."""
    out: dict[int, Sizing] = {}
    for (more_mem, more_time), tasks in resubmit_groups(failed, mem=mem, time=time).items():
        for task in tasks:
            a = measured.get(task)
            m, t, why = None, None, []
            if more_mem:  # an explicit --mem/--time needs no reason per task
                m, note = _mem_for(a, mem, job_mem)
                why += [f"task {task}: mem {format_mem(m)}: {note}"] if mem is None else []
            if more_time:
                t, note = _time_for(a, time, job_time)
                why += [f"task {task}: time {format_time(t)}: {note}"] if time is None else []
            out[task] = Sizing(m, t, tuple(why))
    return out


def _mem_for(a: Optional[Attempt], spec: Optional[str], job_mem: Optional[int]) -> tuple[int, str]:
    if spec is not None:
        return new_mem(spec, job_mem) or 0, f"--mem {spec}"
    need = after_oom(a) if a is not None else None
    if need is not None:
        return need.value, need.why
    base = job_mem if a is None or a.req_mem is None else -(-a.req_mem // MIB)
    return new_mem("+50%", base) or 0, "peak unknown: +50% of the request"


def _time_for(
    a: Optional[Attempt], spec: Optional[str], job_time: Optional[int]
) -> tuple[int, str]:
    if spec is not None:
        return new_time(spec, job_time) or 0, f"--time {spec}"
    limit = a.req_time if a is not None and a.req_time else job_time
    need = after_timeout(a, limit) if a is not None else None
    if need is not None:
        return need.value, need.why
    return new_time("x2", limit) or 0, "elapsed unknown: twice the limit"


def size_groups(
    sizes: Mapping[int, Sizing],
) -> list[tuple[tuple[Optional[int], Optional[int]], list[int]]]:
    """Tasks with the same (MiB, seconds), one group (one sbatch) each, in a stable order."""
    groups: dict[tuple[Optional[int], Optional[int]], list[int]] = {}
    for task in sorted(sizes):
        s = sizes[task]
        groups.setdefault((s.mem, s.time), []).append(task)
    return sorted(groups.items(), key=lambda kv: (kv[1][0], kv[0][0] or 0, kv[0][1] or 0))
