"""Submission records: typed values with a versioned on-disk form (``record.json``, pure).

Schema 2 (this version) adds to schema 1: the kind ``sbatch`` (``hpcbridge
sbatch``), ``job.argv`` (its command line) and, per chunk, ``output``/``error``:
the absolute Slurm file name patterns of the task logs.  A schema-1 record
reads as it was written; its chunks' log patterns come from the ``--output``
hpcbridge passed to sbatch (the only place schema 1 sent logs to).  Keys this
version does not know (at the top level) are kept in ``extra`` and written
back unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from hpcbridge.errors import StateError
from hpcbridge.slurm_syntax import format_indices, parse_indices

SCHEMA = 2
READABLE = (1, 2)


@dataclass
class JobSource:
    """What was submitted: the job file (or, for ``sbatch``, the batch script)."""

    file: Optional[str] = None
    dir: str = "."
    sets: list[str] = field(default_factory=list)
    text: str = ""
    argv: list[str] = field(default_factory=list)  # hpcbridge sbatch's arguments (schema 2)


@dataclass(frozen=True)
class ImagePin:
    """The converted image the scripts run."""

    ref: str
    digest: str
    sif_path: str
    sif_sha256: str
    workdir: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ChunkRecord:
    """One sbatch call: its local ``--array`` indices, script, options and job id."""

    offset: int = 0
    indices: str = "0"  # the local --array spec ("0" for a plain job)
    script: str = "job-0.sh"
    job_id: Optional[str] = None
    job_name: Optional[str] = None
    time_limit: Optional[int] = None  # seconds
    mem: Optional[int] = None  # MiB
    sbatch_args: list[str] = field(default_factory=list)
    cluster: Optional[str] = None
    submitted_epoch: Optional[float] = None
    reconciled: bool = False
    output: Optional[str] = None  # absolute Slurm pattern of the task logs (schema 2)
    error: Optional[str] = None  # the same for stderr when it has its own file

    def tasks(self) -> list[tuple[int, int]]:
        """(global task, local index) pairs."""
        return [(i + self.offset, i) for i in parse_indices(self.indices) or ()]


@dataclass(frozen=True)
class Snapshot:
    """The task counts the last status saw."""

    counts: dict[str, int]
    at: str


@dataclass
class Record:
    """One submission (see docs/tracking.md for every field)."""

    id: str = ""
    kind: str = "submit"
    parent: Optional[str] = None
    children: list[str] = field(default_factory=list)
    state: str = "pending"
    name: str = ""
    created_at: str = ""
    created_epoch: float = 0.0
    submitted_at: Optional[str] = None
    submitted_epoch: Optional[float] = None
    host: str = ""
    pid: int = 0
    user: str = ""
    cwd: str = "."
    cluster: Optional[str] = None
    scheduler: str = "cli"
    job: JobSource = field(default_factory=JobSource)
    image: Optional[ImagePin] = None
    config: dict[str, Any] = field(default_factory=dict)  # {values, sources} at submit time
    is_array: bool = True
    tasks: str = ""
    task_count: int = 0
    time_limit: Optional[int] = None
    chunks: list[ChunkRecord] = field(default_factory=list)
    cancelled: str = ""
    cancelled_all: bool = False
    deferred: bool = False
    error: Optional[str] = None
    snapshot: Optional[Snapshot] = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a later version, kept

    def task_ids(self) -> list[int]:
        return sorted(t for c in self.chunks for t, _ in c.tasks())

    def job_ids(self) -> list[str]:
        return [str(c.job_id) for c in self.chunks if c.job_id]

    def cancelled_tasks(self) -> set[int]:
        return set(parse_indices(self.cancelled) or ())

    def set_tasks(self) -> None:
        """``tasks`` and ``task_count`` from the chunks."""
        ids = self.task_ids()
        self.tasks, self.task_count = format_indices(ids), len(ids)


_RECORD_FIELDS = {f.name for f in dataclasses.fields(Record)} - {"extra"}


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _opt_int(value: Any) -> Optional[int]:
    return None if value is None or value == "" else int(value)


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None or value == "" else float(value)


def _chunk(data: Mapping[str, Any]) -> ChunkRecord:
    args = [str(a) for a in data.get("sbatch_args") or []]
    output = data.get("output")
    if output is None:  # schema 1: hpcbridge's own --output, if it passed one
        output = next((a.split("=", 1)[1] for a in args if a.startswith("--output=")), None)
    return ChunkRecord(
        offset=int(data.get("offset") or 0),
        indices=str(data.get("indices", "0")),
        script=str(data.get("script") or "job-0.sh"),
        job_id=_opt_str(data.get("job_id")),
        job_name=_opt_str(data.get("job_name")),
        time_limit=_opt_int(data.get("time_limit")),
        mem=_opt_int(data.get("mem")),
        sbatch_args=args,
        cluster=_opt_str(data.get("cluster")),
        submitted_epoch=_opt_float(data.get("submitted_epoch")),
        reconciled=bool(data.get("reconciled", False)),
        output=_opt_str(output),
        error=_opt_str(data.get("error")),
    )


def _job(data: Mapping[str, Any]) -> JobSource:
    return JobSource(
        file=_opt_str(data.get("file")),
        dir=str(data.get("dir") or "."),
        sets=[str(s) for s in data.get("sets") or []],
        text=str(data.get("text") or ""),
        argv=[str(a) for a in data.get("argv") or []],
    )


def _image(data: Optional[Mapping[str, Any]]) -> Optional[ImagePin]:
    if not data:
        return None
    return ImagePin(
        str(data.get("ref") or ""),
        str(data.get("digest") or ""),
        str(data.get("sif_path") or ""),
        str(data.get("sif_sha256") or ""),
        _opt_str(data.get("workdir")),
    )


def record_from_dict(data: Mapping[str, Any]) -> Record:
    """A record from its JSON form, schema 1 or 2; StateError if it is neither."""
    schema = data.get("schema", 1)
    if schema not in READABLE:
        raise StateError(
            f"record {data.get('id')} has schema {schema!r}; this hpcbridge reads {READABLE}",
            "use the hpcbridge version that wrote it (or a newer one)",
        )
    try:
        snap = data.get("snapshot")
        return Record(
            id=str(data["id"]),
            kind=str(data.get("kind") or "submit"),
            parent=_opt_str(data.get("parent")),
            children=[str(c) for c in data.get("children") or []],
            state=str(data.get("state") or "pending"),
            name=str(data.get("name") or ""),
            created_at=str(data.get("created_at") or ""),
            created_epoch=float(data.get("created_epoch") or 0.0),
            submitted_at=_opt_str(data.get("submitted_at")),
            submitted_epoch=_opt_float(data.get("submitted_epoch")),
            host=str(data.get("host") or ""),
            pid=int(data.get("pid") or 0),
            user=str(data.get("user") or ""),
            cwd=str(data.get("cwd") or "."),
            cluster=_opt_str(data.get("cluster")),
            scheduler=str(data.get("scheduler") or "cli"),
            job=_job(data.get("job") or {}),
            image=_image(data.get("image")),
            config=dict(data.get("config") or {}),
            is_array=bool(data.get("is_array", True)),
            tasks=str(data.get("tasks") or ""),
            task_count=int(data.get("task_count") or 0),
            time_limit=_opt_int(data.get("time_limit")),
            chunks=[_chunk(c) for c in data.get("chunks") or []],
            cancelled=str(data.get("cancelled") or ""),
            cancelled_all=bool(data.get("cancelled_all", False)),
            deferred=bool(data.get("deferred", False)),
            error=_opt_str(data.get("error")),
            snapshot=Snapshot(dict(snap["counts"]), str(snap.get("at", ""))) if snap else None,
            extra={k: v for k, v in data.items() if k not in _RECORD_FIELDS | {"schema"}},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"record {data.get('id')!r} is malformed: {exc!r}") from None


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON form (schema 2)."""
    data = dataclasses.asdict(record)
    extra = data.pop("extra")
    data.update(extra)
    data["schema"] = SCHEMA
    return data
