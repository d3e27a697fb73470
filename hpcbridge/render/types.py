"""The values :func:`hpcbridge.render.render_job` takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class ResolvedImage:
    """A converted image: the job runs ``sif_path``, pinned to ``digest``.

    ``workdir`` is the image's WorkingDir when known (Apptainer ignores it, so
    hpcbridge passes it as ``--pwd`` when the job names no workdir).
    """

    ref: str
    digest: str
    sif_path: str
    sif_sha256: str
    workdir: Optional[str] = None


@dataclass(frozen=True)
class TrackingContext:
    """Where the script records task outcomes, and the submission it belongs to."""

    submission_id: str
    outcomes_dir: str


@dataclass(frozen=True)
class ArrayChunk:
    """One chunk of a large array: ``indices`` is the sbatch ``--array`` spec in
    LOCAL indices; a task's global index is ``SLURM_ARRAY_TASK_ID + offset``."""

    offset: int
    indices: str


@dataclass(frozen=True)
class RenderedJob:
    script: str
    job_name: str
    array: Optional[str]  # the --array value of this script (None: not an array)
    task_ids: tuple[int, ...]  # global task indices this script runs
    files: dict[str, str] = field(default_factory=dict)  # extra files to write beside it
