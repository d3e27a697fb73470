"""``hpcbridge sbatch``: a pyxis-style batch script submitted and recorded like any job.

:func:`plan_pyxis` parses the command line and the script, finds its container
steps (:mod:`hpcbridge.pyxis.steps`), checks the job's resources and mounts
against the site's configuration and converts every image it names
(:mod:`hpcbridge.submit.pyxis_images`; previews only, with ``--dry-run``);
:func:`pyxis_script` renders it; :func:`submit_pyxis` writes a pending record
with the script (now recording task outcomes), runs sbatch through the
scheduler protocol with the user's own options and records the job id, so
``status``, ``watch``, ``logs``, ``cancel``, ``list`` and ``rerun`` work on it.
The record knows where Slurm writes the log: the user's ``-o``/``-e``
(command line, ``SBATCH_OUTPUT``/``SBATCH_ERROR``, ``#SBATCH`` lines) or
sbatch's default ``slurm-%j.out`` (``slurm-%A_%a.out`` for an array).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Optional

from hpcbridge.errors import InputError, JobSpecError
from hpcbridge.pyxis.args import STDIN, PyxisRequest, plan_request
from hpcbridge.pyxis.resources import JobResources, job_resources, job_words
from hpcbridge.pyxis.scan import scan_script
from hpcbridge.pyxis.steps import ImageUse, Steps, find_steps
from hpcbridge.pyxis.values import Mount
from hpcbridge.scheduler.base import TrialRun
from hpcbridge.scheduler.sbatch_options import SbatchSettings, effective_settings
from hpcbridge.slurm_syntax import format_indices, parse_indices, parse_time
from hpcbridge.submit.pyxis_images import Planned, plan_images
from hpcbridge.submit.submitter import ChunkScript, launch, new_record, store_pending
from hpcbridge.tracking.record import ChunkRecord, ImagePin, JobSource, Record

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.render.types import TrackingContext
    from hpcbridge.tracking.session import Session


@dataclass(frozen=True)
class PyxisPlan:
    """A parsed ``hpcbridge sbatch`` command line with its converted images."""

    argv: tuple[str, ...]
    request: PyxisRequest
    resources: JobResources
    images: tuple[Planned, ...]
    notes: tuple[str, ...]  # for the user (stderr) and the script's header
    cwd: str  # where sbatch runs (the job's directory unless --chdir)

    @property
    def dry_run(self) -> bool:
        return self.request.dry_run

    @property
    def test_only(self) -> bool:
        return "--test-only" in self.request.sbatch_options

    @property
    def parsable(self) -> bool:
        return "--parsable" in self.request.sbatch_options

    @property
    def image_pin(self) -> Optional[ImagePin]:
        """The first converted image (what the record shows)."""
        for image in self.images:
            if image.shim.sif:
                shown, shim = image.shown, image.shim
                return ImagePin(
                    shown.ref, shown.digest, shim.sif, image.sif_sha256, shim.workdir or None
                )
        return None


def script_reader(stdin: Optional[IO[str]]) -> Callable[[str], str]:
    """Read a script path, or standard input for ``-`` (no script on the command line)."""

    def read(path: str) -> str:
        if path != STDIN:
            return read_script(path)
        if stdin is None or stdin.isatty():
            raise InputError(
                "no batch script given", "give a script path, --wrap=CMD, or pipe the script in"
            )
        return stdin.read()

    return read


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
    argv: tuple[str, ...],
    cfg: Config,
    *,
    environ: Mapping[str, str],
    cwd: str,
    stdin: Optional[IO[str]] = None,
) -> PyxisPlan:
    """Parse, check against the site, convert the images (see the module docstring)."""
    from hpcbridge.submit.pyxis_images import whole_use

    request = plan_request(argv, script_reader(stdin), environ, cwd)
    chdir = effective_settings(request.sbatch_options, request.text, environ).chdir
    job_dir = os.path.normpath(os.path.join(cwd, chdir)) if chdir else cwd
    words = job_words([h.slurm for h in request.header], environ, request.sbatch_options)
    resources = job_resources(words, cfg)
    notes = list(request.notes) + list(resources.notes)
    scan = scan_script(request.text, environ=environ, cwd=job_dir, args=request.script_args)
    if request.whole_script:
        if scan.srun_lines:
            raise InputError(
                f"script line {scan.srun_lines[0]}: srun inside a script that runs in a "
                "container (--container-image given for the whole script): srun is not "
                "there (pyxis has the same limit)",
                "give --container-image on the srun lines instead and the script runs on the host",
            )
        steps = Steps(mounts=[(0, m) for m in request.container.mounts])
        if request.whole.image:
            steps.add_image(whole_use(request.whole.image, job_dir))
        _check_mounts(steps.mounts, cfg, must_exist=True)
    else:
        steps = find_steps(scan, environ)
        _check_mounts(steps.mounts, cfg, must_exist=False)
        notes += steps.notes
        if not steps.container_lines:
            notes.append(
                "no srun step asks for a container (--container-image, --container-name or "
                "PYXIS_CONTAINER_IMAGE): the script and its steps run on the host as written"
            )
    images, image_notes = plan_images(steps.images, cfg, dry_run=request.dry_run, saves=steps.saves)
    notes += image_notes
    return PyxisPlan(tuple(argv), request, resources, tuple(images), tuple(notes), cwd)


def _check_mounts(mounts: list[tuple[int, Mount]], cfg: Config, *, must_exist: bool) -> None:
    """Mount sources under the site's bind policy (deny/allow lists)."""
    from hpcbridge.config import bind_problem

    for line, mount in mounts:
        where = f"script line {line}: " if line else ""
        problem = bind_problem(mount.src, False, cfg)
        if problem is None:
            continue
        if problem[0] == "does not exist":
            if not must_exist:
                continue  # the script may create it before the step; the shim checks
            raise JobSpecError(
                f"{where}--container-mounts source {mount.src} does not exist",
                "create it or fix the path (pyxis refuses a missing source too)",
            )
        raise JobSpecError(f"{where}--container-mounts source {mount.src} {problem[0]}", problem[1])


def pyxis_script(plan: PyxisPlan, cfg: Config, tracking: Optional[TrackingContext] = None) -> str:
    """The generated batch script (``--dry-run`` prints it without a tracking context)."""
    from hpcbridge.pyxis.script import render_pyxis

    rendered = render_pyxis(
        plan.request,
        cfg,
        images=[(p.shown, p.shim) for p in plan.images],
        gpu_vendor=plan.resources.gpu_vendor,
        notes=plan.notes,
        tracking=tracking,
        hpcbridge=hpcbridge_command(),
    )
    return rendered.script


def hpcbridge_command() -> str:
    """This hpcbridge's command (beside the running Python, else on PATH; "" unknown)."""
    import sys

    from hpcbridge import runner

    beside = Path(sys.executable).with_name("hpcbridge")
    return str(beside) if beside.is_file() else runner.which("hpcbridge") or ""


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


def _job_name(plan: PyxisPlan) -> str:
    script = plan.request.script
    return {"--wrap": "wrap", STDIN: "sbatch"}.get(script, os.path.basename(script))


def submit_pyxis(sess: Session, plan: PyxisPlan, *, environ: Mapping[str, str]) -> Record:
    """Record the submission (pending), sbatch it with the user's options, record the job."""
    from hpcbridge.render.types import TrackingContext

    options = list(plan.request.sbatch_options)
    settings = effective_settings(options, plan.request.text, environ)
    indices = _array_indices(settings)
    name = settings.job_name or _job_name(plan)
    if settings.job_name is None:  # sbatch would name the job after the user's script
        options.append(f"--job-name={name}")
    chunk = ChunkRecord(indices=indices or "0", script="job-0.sh", time_limit=_time_limit(settings))
    pin = plan.image_pin
    record = new_record(
        sess,
        kind="sbatch",
        name=name,
        image=pin or ImagePin("", "", "", ""),
        job=JobSource(plan.request.script, plan.cwd, [], plan.request.text, list(plan.argv)),
        cwd=plan.cwd,
        is_array=indices is not None,
        chunks=[chunk],
        time_limit=chunk.time_limit,
    )
    if pin is None:
        record.image = None

    def scripts(sub_id: str) -> list[ChunkScript]:
        tracking = TrackingContext(sub_id, str(sess.store.path(sub_id) / "outcomes"))
        return [ChunkScript(pyxis_script(plan, sess.cfg, tracking), options, name)]

    record = store_pending(sess, record, scripts, environ=environ)
    return launch(sess, record)


def trial_pyxis(sess: Session, plan: PyxisPlan) -> TrialRun:
    """``--test-only``: sbatch judges the script; nothing is submitted or recorded."""
    tmp = Path(tempfile.mkdtemp(prefix=".sbatch-test.", dir=sess.store.root))
    try:
        script = tmp / (os.path.basename(plan.request.script) or "script.sh")
        script.write_text(pyxis_script(plan, sess.cfg), encoding="utf-8")
        return sess.scheduler.test_only(
            script, cwd=Path(plan.cwd), extra_args=plan.request.sbatch_options
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["ImageUse", "PyxisPlan", "plan_pyxis", "pyxis_script", "submit_pyxis", "trial_pyxis"]
