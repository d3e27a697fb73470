"""Finding and following a task's Slurm log (no scheduler query: the record says where)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import InputError, StateError
from hpcbridge.tracking.store import Store
from hpcbridge.tracking.summary import chunk_tasks


def log_candidates(store: Store, sub_id: str, task: Optional[int]) -> tuple[list[Path], int]:
    """The log file(s) the task would write, and the task chosen."""
    record = store.load(sub_id)
    pairs = [(t, local, c) for c in record["chunks"] for t, local in chunk_tasks(c)]
    if not pairs:
        raise StateError(f"submission {sub_id} has no tasks")
    if task is None:
        task = min(t for t, _, _ in pairs)
    match = [(local, c) for t, local, c in pairs if t == task]
    if not match:
        raise InputError(
            f"--task {task} is not part of {sub_id}", f"its tasks are {record.get('tasks')}"
        )
    local, chunk = match[0]
    path = log_path(store.path(sub_id), record, chunk, local)
    if path is None:
        raise StateError(f"task {task} of {sub_id} has not been submitted yet")
    return [path], task


def log_path(
    sub_dir: Path, record: Mapping[str, Any], chunk: Mapping[str, Any], local: int
) -> Optional[Path]:
    """Where Slurm writes the log of one task (``--output`` given by submit)."""
    job = chunk.get("job_id")
    if not job:
        return None
    name = chunk.get("job_name") or record.get("name") or "job"
    if record.get("is_array", True):
        return sub_dir / "logs" / f"{name}_{job}_{local}.out"
    return sub_dir / "logs" / f"{name}_{job}.out"


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


def find_log(store: Store, sub_id: str, task: Optional[int], *, wait: bool) -> tuple[Path, int]:
    paths, chosen = log_candidates(store, sub_id, task)
    for p in paths:
        if p.is_file() or wait:
            return p, chosen
    raise StateError(
        f"no log yet for task {chosen} of {sub_id} ({paths[0]})",
        "the task has not started yet; try `hpcbridge logs --follow`",
    )


def follow_log(path: Path, end_marker: Path, poll: float = 0.5) -> Iterator[str]:
    """Yield the log's text as it grows until the task's ``.end`` outcome file appears."""
    pos = 0
    finished_at: Optional[float] = None
    while True:
        if path.is_file():
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
