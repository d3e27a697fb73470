"""Pure planning for submissions: array chunks and resubmission resources.

Slurm's ``MaxArraySize`` caps the array INDEX (``--array=1001-2000`` is refused
when MaxArraySize is 1001), not only the count, so a large array becomes chunks
whose local indices start at 0: chunk ``k`` runs local ``0..n`` with an index
offset, and each task still sees its global index (``SLURM_ARRAY_TASK_ID +
offset``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import InputError
from hpcbridge.slurm_syntax import format_indices, parse_mem, parse_time


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
