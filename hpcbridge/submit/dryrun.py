"""``render`` and ``submit --dry-run``: the script a job file would be submitted with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcbridge.config import Config


def render_text(cfg: Config, job_file: str, sets: Sequence[str]) -> str:
    """Load and check the job, convert its image (once), render the script (no tracking)."""
    from hpcbridge.config import validate_job
    from hpcbridge.job.load import load_job
    from hpcbridge.render.job import render_job
    from hpcbridge.submit.submitter import resolve_image

    job = load_job(job_file, sets)
    validate_job(job, cfg)
    image = resolve_image(job.image, cfg)
    return str(render_job(job, cfg, image=image).script)
