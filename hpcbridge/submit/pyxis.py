"""``hpcbridge sbatch``: a pyxis-style batch script submitted and recorded like any job.

:func:`plan_pyxis` parses the command line, checks the mounts against the site's
bind policy and converts the image (nothing is written); :func:`pyxis_script`
renders it (the ``--dry-run`` text); :func:`submit_pyxis` writes a pending record
with the script (now recording task outcomes), runs sbatch through the scheduler
protocol with the user's own options and records the job id, so ``status``,
``watch``, ``logs``, ``cancel``, ``list`` and ``rerun`` work on it.  The record
knows where Slurm writes the log: the user's ``-o``/``-e`` (command line,
``SBATCH_OUTPUT``/``SBATCH_ERROR``, ``#SBATCH`` lines) or sbatch's default
``slurm-%j.out`` (``slurm-%A_%a.out`` for an array) in the working directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import InputError, JobSpecError
from hpcbridge.pyxis.args import PyxisRequest, plan_request
from hpcbridge.scheduler.base import TrialRun
from hpcbridge.scheduler.sbatch_options import SbatchSettings, effective_settings
from hpcbridge.slurm_syntax import format_indices, parse_indices, parse_time
from hpcbridge.submit.submitter import (
    ChunkScript,
    image_pin,
    launch,
    new_record,
    resolve_image,
    store_pending,
)
from hpcbridge.tracking.record import ChunkRecord, JobSource, Record

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.render.types import ResolvedImage, TrackingContext
    from hpcbridge.tracking.session import Session


@dataclass(frozen=True)
class PyxisPlan:
    """A parsed ``hpcbridge sbatch`` command line with its converted image."""

    argv: tuple[str, ...]
    request: PyxisRequest
    text: str  # the user's batch script
    comment_lines: frozenset[int]  # its lines holding container options
    image: ResolvedImage
    cwd: str

    @property
    def dry_run(self) -> bool:
        return self.request.dry_run

    @property
    def test_only(self) -> bool:
        return "--test-only" in self.request.sbatch_options

    @property
    def parsable(self) -> bool:
        return "--parsable" in self.request.sbatch_options


def read_script(path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"batch script {path!r} does not exist", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"batch script {path!r} is a directory", "give a file") from None
    except UnicodeDecodeError:
        raise InputError(f"batch script {path!r} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read batch script {path!r}: {exc.strerror}") from None


def plan_pyxis(
    argv: tuple[str, ...], cfg: Config, *, environ: Mapping[str, str], cwd: str
) -> PyxisPlan:
    """Parse, check the mounts under the site's bind policy, convert the image."""
    from hpcbridge.config import bind_problem
    from hpcbridge.pyxis.values import image_reference

    request, text, lines = plan_request(argv, read_script, environ, cwd)
    for i, mount in enumerate(request.container.mounts):
        problem = bind_problem(mount.src, False, cfg)
        if problem:
            raise JobSpecError(
                f"--container-mounts entry [{i}].src = {mount.src!r} {problem[0]}", problem[1]
            )
    ref = image_reference(request.container.image or "")
    if ref.endswith(".sif") and not ref.startswith("docker://"):
        ref = os.path.abspath(ref)
    return PyxisPlan(tuple(argv), request, text, frozenset(lines), resolve_image(ref, cfg), cwd)


def pyxis_script(plan: PyxisPlan, cfg: Config, tracking: Optional[TrackingContext] = None) -> str:
    """The generated batch script (``--dry-run`` prints it without a tracking context)."""
    from hpcbridge.pyxis.script import render_pyxis

    req = plan.request
    rendered = render_pyxis(
        plan.text,
        req.script,
        req.script_args,
        req.container,
        cfg,
        image=plan.image,
        comment_lines=set(plan.comment_lines),
        sbatch_options=req.sbatch_options,
        tracking=tracking,
    )
    return rendered.script


def _array_indices(settings: SbatchSettings) -> Optional[str]:
    if settings.array is None:
        return None
    indices = parse_indices(settings.array)
    if indices is None:
        raise InputError(
            f"--array={settings.array} is not a list of array indices",
            "write e.g. --array=0-99, --array=1,3,5-7 or --array=0-15%4",
        )
    return format_indices(indices)


def _time_limit(settings: SbatchSettings) -> Optional[int]:
    try:
        return parse_time(settings.time, "--time", InputError) if settings.time else None
    except InputError:
        return None  # sbatch judges its own options; the limit only refines TIMEOUT


def submit_pyxis(sess: Session, plan: PyxisPlan, *, environ: Mapping[str, str]) -> Record:
    """Record the submission (pending), sbatch it with the user's options, record the job."""
    from hpcbridge.render.types import TrackingContext

    options = list(plan.request.sbatch_options)
    settings = effective_settings(options, plan.text, environ)
    indices = _array_indices(settings)
    name = settings.job_name or os.path.basename(plan.request.script)
    if settings.job_name is None:  # sbatch would name the job after the user's script
        options.append(f"--job-name={name}")
    chunk = ChunkRecord(indices=indices or "0", script="job-0.sh", time_limit=_time_limit(settings))
    record = new_record(
        sess,
        kind="sbatch",
        name=name,
        image=image_pin(plan.image),
        job=JobSource(plan.request.script, plan.cwd, [], plan.text, list(plan.argv)),
        cwd=plan.cwd,
        is_array=indices is not None,
        chunks=[chunk],
        time_limit=chunk.time_limit,
    )

    def scripts(sub_id: str) -> list[ChunkScript]:
        tracking = TrackingContext(sub_id, str(sess.store.path(sub_id) / "outcomes"))
        return [ChunkScript(pyxis_script(plan, sess.cfg, tracking), options, name)]

    record = store_pending(sess, record, scripts, environ=environ)
    return launch(sess, record)


def trial_pyxis(sess: Session, plan: PyxisPlan) -> TrialRun:
    """``--test-only``: sbatch judges the script; nothing is submitted or recorded."""
    tmp = Path(tempfile.mkdtemp(prefix=".sbatch-test.", dir=sess.store.root))
    try:
        script = tmp / os.path.basename(plan.request.script)
        script.write_text(pyxis_script(plan, sess.cfg), encoding="utf-8")
        return sess.scheduler.test_only(
            script, cwd=Path(plan.cwd), extra_args=plan.request.sbatch_options
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
