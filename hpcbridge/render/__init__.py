"""Render job files into sbatch scripts that run ``apptainer exec`` (pure).

Public API::

    render_job(job, cfg, *, image, tracking=None, chunk=None) -> RenderedJob

with :class:`ResolvedImage`, :class:`TrackingContext`, :class:`ArrayChunk` and
:class:`RenderedJob` from :mod:`hpcbridge.render.types`.
"""

from __future__ import annotations

from hpcbridge.render.types import ArrayChunk, RenderedJob, ResolvedImage, TrackingContext

__all__ = ["ArrayChunk", "RenderedJob", "ResolvedImage", "TrackingContext", "render_job"]


def __getattr__(name: str) -> object:
    # render_job pulls in the model and the header code; import it on first use
    if name == "render_job":
        from hpcbridge.render.job import render_job

        return render_job
    raise AttributeError(name)
