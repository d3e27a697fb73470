"""Render job files into sbatch scripts that run ``apptainer exec`` (pure).

Public API::

    render_job(job, cfg, *, image, tracking=None, chunk=None) -> RenderedJob

with :class:`ResolvedImage`, :class:`TrackingContext`, :class:`ArrayChunk` and
:class:`RenderedJob` from :mod:`hpcbridge.render.types`.

Modules: ``job`` (render_job: builds the template context and renders),
``context`` (the template contract: what templates see, documented in
docs/site-admin.md), ``environment`` (Jinja setup, the ``shquote`` and
``comment`` filters), ``header`` (#SBATCH lines), ``apptainer`` (runtime argv),
``flags`` (the runtime flag table), ``launcher`` (per-task variable forwarding),
``mpi`` (MPI launch plans), ``placeholders`` (``{task}``/``{input}`` as shell
words), ``words`` (shell quoting), ``types`` (render_job's inputs and result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcbridge.render.types import ArrayChunk, RenderedJob, ResolvedImage, TrackingContext

if TYPE_CHECKING:
    from hpcbridge.render.job import render_job

__all__ = ["ArrayChunk", "RenderedJob", "ResolvedImage", "TrackingContext", "render_job"]


def __getattr__(name: str) -> object:
    # render_job pulls in the job model, the configuration and the header code;
    # import it on first use
    if name == "render_job":
        from hpcbridge.render.job import render_job

        return render_job
    raise AttributeError(name)
