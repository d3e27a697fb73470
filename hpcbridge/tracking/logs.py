"""Where a task's Slurm log is, and following it (no scheduler query: the record says where).

Each chunk records the ``--output`` (and ``--error``) file name pattern sbatch
used, made absolute; :func:`task_log_path` fills in the task's values (the
task's own job id, needed by ``%j`` in an array, comes from its ``.start``
outcome file).  Records of schema 1 name no pattern: their logs are in the
submission's ``logs/`` directory, where hpcbridge sent them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from hpcbridge.errors import InputError, StateError
from hpcbridge.scheduler.sbatch_options import PatternValues, expand_pattern
from hpcbridge.tracking.outcomes import Outcome, read_outcomes
from hpcbridge.tracking.record import ChunkRecord, Record
from hpcbridge.tracking.store import Store


@dataclass(frozen=True)
class LogTarget:
    """One task of a submission and the pattern of the log asked for."""

    sub_dir: Path
    record: Record
    chunk: ChunkRecord
    task: int
    local: int
    pattern: str


def pattern_of(sub_dir: Path, record: Record, chunk: ChunkRecord, stream: str = "output") -> str:
    """The chunk's recorded log pattern (schema 1: hpcbridge's own ``logs/`` directory)."""
    if stream == "error":
        if chunk.error is None:
            raise InputError(
                f"the tasks of {record.id} write stderr into their output log",
                "run `hpcbridge logs` without --stderr",
            )
        return chunk.error
    if chunk.output:
        return chunk.output
    name = "%x_%A_%a.out" if record.is_array else "%x_%j.out"
    return str(sub_dir / "logs" / name)


def task_log_path(target: LogTarget, outcome: Optional[Outcome]) -> Optional[Path]:
    """The task's log file; None while it cannot be known (the task has not started).

    StateError when the pattern uses a placeholder hpcbridge cannot fill (``%N``).
    """
    chunk, record = target.chunk, target.record
    if not chunk.job_id:
        return None
    values = PatternValues(
        job_id=chunk.job_id,
        array_index=target.local if record.is_array else None,
        task_job_id=outcome.job_id if outcome is not None else None,
        job_name=chunk.job_name or record.name or "job",
        user=record.user,
    )
    try:
        return Path(expand_pattern(target.pattern, values))
    except LookupError as exc:
        if str(exc) in ("%j", "%J") and outcome is None:
            return None  # an array task's own job id is known once it starts
        raise StateError(
            f"cannot tell where task {target.task} of {record.id} logs: "
            f"{target.pattern} uses {exc}",
            "see docs/tracking.md for the patterns `hpcbridge logs` understands",
        ) from None


def log_target(store: Store, sub_id: str, task: Optional[int], stream: str) -> LogTarget:
    """The task asked for (default: the first) and its log pattern."""
    record = store.load(sub_id)
    pairs = [(t, local, c) for c in record.chunks for t, local in c.tasks()]
    if not pairs:
        raise StateError(f"submission {sub_id} has no tasks")
    if task is None:
        task = min(t for t, _, _ in pairs)
    match = [(local, c) for t, local, c in pairs if t == task]
    if not match:
        raise InputError(f"--task {task} is not part of {sub_id}", f"its tasks are {record.tasks}")
    local, chunk = match[0]
    sub_dir = store.path(sub_id)
    pattern = pattern_of(sub_dir, record, chunk, stream)
    return LogTarget(sub_dir, record, chunk, task, local, pattern)


def resolver(target: LogTarget) -> Callable[[], Optional[Path]]:
    """A function answering the log's path once it is known."""

    def resolve() -> Optional[Path]:
        outcomes = read_outcomes(target.sub_dir / "outcomes", only=[target.task])
        return task_log_path(target, outcomes.get(target.task))

    return resolve


def _submitted(target: LogTarget) -> None:
    if not target.chunk.job_id:
        raise StateError(f"task {target.task} of {target.record.id} has not been submitted yet")


def existing_log(target: LogTarget) -> Path:
    """The log file, which must exist by now."""
    _submitted(target)
    path = resolver(target)()
    if path is None or not path.is_file():
        where = f" ({path})" if path is not None else ""
        raise StateError(
            f"no log yet for task {target.task} of {target.record.id}{where}",
            "the task has not started yet; try `hpcbridge logs --follow`",
        )
    return path


def log_tail(path: Optional[Path], size: int = 4096) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def follow_task_log(target: LogTarget) -> Iterator[str]:
    """The task's log as it grows (once it is known and exists) until the task ends."""
    _submitted(target)
    return follow_log(resolver(target), target.sub_dir / "outcomes" / f"{target.task}.end")


def follow_log(
    resolve: Callable[[], Optional[Path]], end_marker: Path, poll: float = 0.5
) -> Iterator[str]:
    """Yield the log's text as it grows until the task's ``.end`` outcome file appears."""
    pos = 0
    finished_at: Optional[float] = None
    path: Optional[Path] = None
    while True:
        if path is None:
            path = resolve()
        if path is not None and path.is_file():
            with path.open("r", encoding="utf-8", errors="replace") as fh:
                fh.seek(pos)
                data = fh.read()
                pos = fh.tell()
            if data:
                yield data
        if end_marker.exists():
            # one more read after the end: Slurm flushes the log when the task ends
            if finished_at is None:
                finished_at = time.monotonic()
            elif time.monotonic() - finished_at > 2 * poll:
                return
        time.sleep(poll)
