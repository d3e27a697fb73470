"""What the submitting commands return: typed values with the ``--json`` form they print."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.tracking.record import Record


@dataclass(frozen=True)
class BundleOrigin:
    """Where a ``rerun --from`` submission came from."""

    path: Path
    from_id: str  # the submission the bundle was exported from
    sif: Path  # the SIF converted here (byte-identical to the bundle's)


@dataclass(frozen=True)
class Submission:
    """A new submission (submit, rerun, resubmit, rerun --from) as recorded after sbatch."""

    record: Record
    directory: Path
    note: Optional[str] = None  # resubmit: the changed resources ("tasks 3: mem 1536M")
    failed_tasks: Optional[str] = None  # resubmit: the tasks submitted again
    bundle: Optional[BundleOrigin] = None
    changes: tuple[str, ...] = ()  # resubmit, rerun --right-size: what changed and why

    @property
    def id(self) -> str:
        return self.record.id

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        data: dict[str, Any] = {
            "id": r.id,
            "kind": r.kind,
            "parent": r.parent,
            "state": r.state,
            "name": r.name,
            "tasks": self.failed_tasks if self.failed_tasks is not None else r.tasks,
            "task_count": r.task_count,
            "job_ids": r.job_ids(),
            "chunks": [
                {"offset": c.offset, "indices": c.indices, "job_id": c.job_id, "script": c.script}
                for c in r.chunks
            ],
            "deferred": r.deferred,
            "image": r.image.to_dict() if r.image is not None else None,
            "directory": str(self.directory),
        }
        if self.note is not None:
            data["note"] = self.note
        if self.changes:
            data["changes"] = list(self.changes)
        if self.bundle is not None:
            data["bundle"] = {
                "path": str(self.bundle.path),
                "from": self.bundle.from_id,
                "sif": str(self.bundle.sif),
            }
        return data


@dataclass(frozen=True)
class Cancellation:
    """What ``cancel`` did: the tasks now marked cancelled and the scancel targets."""

    id: str
    tasks: str  # global task indices, "3,5-7"
    targets: tuple[str, ...]  # "123", "124_[3,5-7]"
