"""``submit --dry-run``: the same text ``hpcbridge render`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_text(cfg: Any, job_file: str, sets: Sequence[str]) -> str:
    from hpcbridge.config import validate_job
    from hpcbridge.job.load import load_job
    from hpcbridge.render.job import render_job
    from hpcbridge.submit.submitter import resolve_image

    job = load_job(job_file, sets)
    validate_job(job, cfg)
    image = resolve_image(job, cfg)
    return str(render_job(job, cfg, image=image).script)
