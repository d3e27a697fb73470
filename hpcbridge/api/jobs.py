"""Jobs: render, submit, rerun, resubmit, cancel, export, and the pyxis-style sbatch."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn, Optional

from hpcbridge.api._common import config, session
from hpcbridge.errors import InputError

if TYPE_CHECKING:
    from hpcbridge.images.preview import ImagePreview
    from hpcbridge.scheduler.base import TrialRun
    from hpcbridge.submit.bundle import Export
    from hpcbridge.submit.pyxis import PyxisPlan
    from hpcbridge.submit.pyxis_srun import SrunPlan
    from hpcbridge.submit.results import Cancellation, Submission


@dataclass(frozen=True)
class Rendered:
    """A rendered sbatch script, the file it was written to (None: not written), and
    what is known of its image (``image.unresolved``: the script names no digest)."""

    text: str
    image: ImagePreview
    written: Optional[Path] = None


def render_script(
    job_file: str,
    sets: Sequence[str] = (),
    *,
    output: Optional[Path] = None,
    offline: bool = False,
) -> Rendered:
    """The sbatch script of ``job_file``; written atomically, mode 0755, to ``output``
    when given.  Nothing is submitted, converted or downloaded but the image's
    manifest and config (none of it ``offline``)."""
    from hpcbridge.fsutil import atomic_write_text
    from hpcbridge.submit.dryrun import render_text

    text, image = render_text(config(), job_file, sets, offline=offline)
    if output is None:
        return Rendered(text, image)
    try:
        atomic_write_text(output, text, mode=0o755)
    except OSError as exc:
        raise InputError(
            f"cannot write {output}: {exc.strerror}", "choose a writable path for -o"
        ) from None
    return Rendered(text, image, output)


def submit(
    job_file: str,
    sets: Sequence[str] = (),
    *,
    retries: int = 0,
    cwd: Optional[str] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> Submission:
    """Convert the image (once), render, sbatch and record ``job_file``; ``progress``
    hears the conversion (see :mod:`hpcbridge.images.progress`)."""
    from hpcbridge.submit.actions import submit_job

    sess = session()
    cwd = cwd or os.getcwd()
    return submit_job(sess, job_file, sets, retries=retries, cwd=cwd, progress=progress)


def rerun(sub_ref: str, *, retries: int = 0) -> Submission:
    """Submit a recorded submission again with its recorded scripts and SIF."""
    from hpcbridge.submit.actions import rerun as rerun_record

    sess = session()
    return rerun_record(sess, sess.store.resolve(sub_ref), retries=retries)


def rerun_bundle(bundle: Path, *, retries: int = 0) -> Submission:
    """Submit the job of an exported bundle here (its SIF must convert byte-identical)."""
    from hpcbridge.submit.bundle import rerun_from_bundle

    return rerun_from_bundle(session(), bundle, retries=retries)


def resubmit(
    sub_ref: str, *, mem: Optional[str] = None, time: Optional[str] = None, retries: int = 0
) -> Submission:
    """Submit the failed tasks again as a new submission linked to the original."""
    from hpcbridge.submit.actions import resubmit_failed

    sess = session()
    return resubmit_failed(sess, sess.store.resolve(sub_ref), mem=mem, time=time, retries=retries)


def resubmit_script(sub_ref: str, *, mem: Optional[str] = None, time: Optional[str] = None) -> str:
    """The script ``resubmit`` would submit (first group of tasks); nothing is submitted."""
    from hpcbridge.submit.actions import resubmit_script as script

    sess = session()
    return script(sess, sess.store.resolve(sub_ref), mem=mem, time=time)


def cancel(sub_ref: str, tasks: Optional[str] = None) -> Cancellation:
    """scancel a submission, or some of its tasks (global indices, ``3,5-7``)."""
    from hpcbridge.submit.actions import cancel_tasks

    sess = session()
    return cancel_tasks(sess, sess.store.resolve(sub_ref), tasks)


def export(sub_ref: str, output: Path) -> Export:
    """Write the reproducible bundle of a submission to ``output`` (new or empty)."""
    from hpcbridge.fsutil import xdg_dir
    from hpcbridge.submit.bundle import export_submission

    return export_submission(config().state.dir or xdg_dir("state"), sub_ref, output)


def pyxis_plan(
    argv: Sequence[str],
    *,
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    stdin: Optional[IO[str]] = None,
) -> PyxisPlan:
    """Parse a pyxis-style sbatch command line and script (from ``stdin`` when the command
    line names none), check it against the site, convert its images (preview: --dry-run)."""
    from hpcbridge.submit.pyxis import plan_pyxis

    env = os.environ if environ is None else environ
    return plan_pyxis(tuple(argv), config(), environ=env, cwd=cwd or os.getcwd(), stdin=stdin)


def pyxis_script(plan: PyxisPlan) -> str:
    """The batch script hpcbridge would submit for ``plan`` (``--dry-run``)."""
    from hpcbridge.submit.pyxis import pyxis_script as script

    return script(plan, config())


def pyxis_submit(plan: PyxisPlan, *, environ: Optional[Mapping[str, str]] = None) -> Submission:
    """Submit and record a pyxis-style script; ``status``, ``logs`` ... then know it."""
    from hpcbridge.submit.pyxis import submit_pyxis
    from hpcbridge.submit.results import Submission

    sess = session()
    record = submit_pyxis(sess, plan, environ=os.environ if environ is None else environ)
    return Submission(record, sess.store.path(record.id))


def pyxis_trial(plan: PyxisPlan) -> TrialRun:
    """``--test-only``: what sbatch says about the script; nothing is submitted or recorded."""
    from hpcbridge.submit.pyxis import trial_pyxis

    return trial_pyxis(session(), plan)


def srun_plan(
    argv: Sequence[str],
    *,
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
) -> SrunPlan:
    """``hpcbridge srun``: check srun's pyxis options, convert the image (preview: --dry-run)."""
    from hpcbridge.submit.pyxis_srun import plan_srun

    env = os.environ if environ is None else environ
    return plan_srun(tuple(argv), config(), environ=env, cwd=cwd or os.getcwd())


def srun_dry_run(plan: SrunPlan) -> str:
    """The srun command line ``hpcbridge srun`` would run; nothing is started."""
    from hpcbridge.submit.pyxis_srun import srun_dry_run as dry

    return dry(plan)


def srun_exec(plan: SrunPlan) -> NoReturn:
    """Run the step: this process becomes srun (through the shim); never returns."""
    from hpcbridge.submit.pyxis_srun import srun_exec as run

    run(plan)
