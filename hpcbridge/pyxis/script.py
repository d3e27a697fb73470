"""Render a pyxis-style batch script (pure: reads templates only).

The generated script keeps the user's ``#SBATCH`` lines (pyxis options become
comments; a line mixing Slurm and pyxis options keeps its Slurm options),
records the outcome like every hpcbridge job and, at run time, writes the
user's script byte-exact and the ``srun`` shim (:mod:`hpcbridge.pyxis.shim`)
to a private directory.  Then either

* the script runs on the host with the shim first on ``PATH`` (and as an
  exported ``srun`` function, which survives a login shell resetting ``PATH``):
  its ``srun --container-*`` steps run in containers, other steps and lines on
  the host, exactly as written; or
* (``--container-image``/``--container-name`` for the whole script, from the
  command line, ``#SBATCH`` lines or ``PYXIS_CONTAINER_*``) the script itself
  runs in the container, through the same shim without srun, as pyxis runs it.

Environment, as with pyxis: the job's variables are visible in the container
(no ``--cleanenv``), the image's own variables win, ``--container-env`` names
keep the host value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

from hpcbridge.config.schema import Config
from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import PyxisRequest, rewrite_header_line
from hpcbridge.pyxis.shim import ShimImage, render_shim, shim_context
from hpcbridge.render.context import TRAPPED_SIGNALS, PyxisContext, PyxisImage
from hpcbridge.render.environment import render_template, site_template_dir
from hpcbridge.render.types import RenderedJob, TrackingContext

#: sbatch refuses scripts larger than this by default (SchedulerParameters max_script_size).
MAX_SCRIPT_BYTES = 4 * 1024 * 1024


def render_pyxis(
    request: PyxisRequest,
    cfg: Config,
    *,
    images: Sequence[tuple[PyxisImage, ShimImage]],
    gpu_vendor: Optional[str],
    notes: Sequence[str] = (),
    tracking: Optional[TrackingContext] = None,
    hpcbridge: str = "",
) -> RenderedJob:
    """The sbatch script for ``request`` (see the module docstring); ``hpcbridge`` is the
    command the job may call to convert an image only known at run time."""
    if "\x00" in request.text:
        raise InputError(f"{request.script} contains a NUL byte", "is it a text file?")
    header: list[str] = []
    for line in request.header:
        header.extend(rewrite_header_line(line))
    base = _body_name(request.script)
    shim_images = [s for _, s in images]
    shim = render_shim(shim_context(cfg, shim_images, gpu_vendor, hpcbridge), cfg)
    context = PyxisContext(
        header=tuple(header),
        script_name=request.script,
        sbatch_options=request.sbatch_options,
        notes=tuple(notes),
        images=tuple(p for p, _ in images),
        submission_id=tracking.submission_id if tracking else None,
        task_offset=0,
        outcomes_dir=tracking.outcomes_dir if tracking else None,
        signals=TRAPPED_SIGNALS,
        modules=cfg.runtime.modules,
        body=request.text,
        body_name=base,
        script_args=request.script_args,
        shim=shim,
        whole=tuple(request.whole.words()),
    )
    text = render_template("pyxis.sh.j2", context, site_template_dir(cfg))
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        raise InputError(
            f"the generated script is {len(text.encode()) // 1024} KiB, above sbatch's "
            "4 MiB default limit",
            "keep large data out of the batch script",
        )
    return RenderedJob(text, base, None, (0,), {})


def _body_name(script: str) -> str:
    if script == "--wrap":
        return "wrap.sh"
    if script == "-":
        return "stdin.sh"
    return os.path.basename(script) or "script.sh"
