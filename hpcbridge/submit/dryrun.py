"""``render`` and ``submit --dry-run``: the script a job file would be submitted with.

Nothing is converted or downloaded: the image comes from
:func:`hpcbridge.images.preview.preview_image` (the cache, or the manifest and
config).  An image that is resolved but not converted yet is shown at the SIF
path ``submit`` will convert it to; an unresolved one (offline, registry
unreachable, nothing cached) is marked ``UNRESOLVED`` in the script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.images.preview import ImagePreview
    from hpcbridge.render.types import ResolvedImage

#: What an unresolved image looks like in a previewed script.
UNRESOLVED = "UNRESOLVED"
NOT_CONVERTED = "not converted yet (submit converts it)"


def render_text(
    cfg: Config, job_file: str, sets: Sequence[str], *, offline: bool = False
) -> tuple[str, ImagePreview]:
    """Load and check the job, preview its image, render the script (no tracking)."""
    from hpcbridge.config import validate_job
    from hpcbridge.images.preview import preview_image
    from hpcbridge.job.load import load_job
    from hpcbridge.render.job import render_job

    job = load_job(job_file, sets)
    validate_job(job, cfg)
    preview = preview_image(job.image, cfg, offline=offline)
    script = render_job(job, cfg, image=planned_image(preview, cfg)).script
    return str(script), preview


def planned_image(preview: ImagePreview, cfg: Config) -> ResolvedImage:
    """The image as a previewed script names it (see the module docstring)."""
    from hpcbridge.images.cache import Cache
    from hpcbridge.render.types import ResolvedImage

    if preview.sif_path is not None and preview.digest:
        sha = preview.sif_sha256 or ""
        return ResolvedImage(
            preview.ref, preview.digest, str(preview.sif_path), sha, preview.workdir
        )
    if preview.digest:
        sif = Cache(cfg.cache.dir).sif_path(preview.digest)
        return ResolvedImage(preview.ref, preview.digest, str(sif), NOT_CONVERTED, preview.workdir)
    return ResolvedImage(
        f"{preview.ref} ({UNRESOLVED}: {preview.unresolved})",
        UNRESOLVED,
        f"{UNRESOLVED}:{preview.ref}",
        UNRESOLVED,
    )
