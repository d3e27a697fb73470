"""``render_job``: a JobSpec + Config + converted image -> an sbatch script (pure).

The only I/O is reading the Jinja templates.  :func:`job_context` builds the
:class:`~hpcbridge.render.context.JobContext` the templates see (the template
contract).  All shell text that carries values is built here as argv lists of
``str``/:class:`~hpcbridge.render.words.Word` and printed by the templates through
the ``shquote`` filter.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from hpcbridge.config.schema import Config, Partition
from hpcbridge.config.validate import check_time_limit, effective_gpu_vendor, resolve_partition
from hpcbridge.errors import JobSpecError
from hpcbridge.job.spec import JobSpec
from hpcbridge.job.values import input_fields
from hpcbridge.render import launcher
from hpcbridge.render.apptainer import build_argv, env_prefix, group_argv
from hpcbridge.render.container import container_call, container_env, env_commands, runtime_env
from hpcbridge.render.context import (
    TRAPPED_SIGNALS,
    InputArray,
    InputEntry,
    JobContext,
    RuntimeMark,
    TaskExport,
    TaskFormat,
)
from hpcbridge.render.environment import render_template, site_template_dir
from hpcbridge.render.header import dependency_value, sbatch_lines
from hpcbridge.render.mpi import plan as mpi_plan
from hpcbridge.render.placeholders import INPUT_VARS, TaskVars
from hpcbridge.render.runtime import RunTime, run_time
from hpcbridge.render.types import ArrayChunk, RenderedJob, ResolvedImage, TrackingContext
from hpcbridge.render.words import Arg
from hpcbridge.slurm_syntax import parse_array

TASK_EXPORTS = {
    "task": "HPCBRIDGE_TASK",
    "input": "HPCBRIDGE_INPUT",
    "input_name": "HPCBRIDGE_INPUT_NAME",
    "input_stem": "HPCBRIDGE_INPUT_STEM",
}
#: sbatch refuses scripts larger than this by default (SchedulerParameters max_script_size).
MAX_SCRIPT_BYTES = 4 * 1024 * 1024


class _Tasks(NamedTuple):
    array: Optional[str]  # the --array value (None: not an array)
    ids: tuple[int, ...]  # the global task ids of this script
    offset: int  # global index = SLURM_ARRAY_TASK_ID + offset


def render_job(
    job: JobSpec,
    cfg: Config,
    *,
    image: ResolvedImage,
    tracking: Optional[TrackingContext] = None,
    chunk: Optional[ArrayChunk] = None,
) -> RenderedJob:
    """Render the sbatch script of ``job`` (or of one array ``chunk`` of it)."""
    tasks = _tasks(job, chunk)
    ctx = _context(job, cfg, image, tracking, tasks)
    script = render_template("job.sh.j2", ctx, site_template_dir(cfg))
    if len(script.encode()) > MAX_SCRIPT_BYTES:
        raise JobSpecError(
            f"the script for {len(tasks.ids)} tasks is {len(script.encode()) // 1024} KiB, "
            "above sbatch's 4 MiB default limit",
            "submit fewer inputs per job (split the inputs list)",
        )
    return RenderedJob(script, job.name, tasks.array, tasks.ids, {})


def job_context(
    job: JobSpec,
    cfg: Config,
    *,
    image: ResolvedImage,
    tracking: Optional[TrackingContext] = None,
    chunk: Optional[ArrayChunk] = None,
) -> JobContext:
    """The variables ``job.sh.j2`` sees for ``job`` (what :func:`render_job` renders)."""
    return _context(job, cfg, image, tracking, _tasks(job, chunk))


def _context(
    job: JobSpec,
    cfg: Config,
    image: ResolvedImage,
    tracking: Optional[TrackingContext],
    tasks: _Tasks,
) -> JobContext:
    part = resolve_partition(job, cfg)
    check_time_limit(job, cfg)
    tv = TaskVars()  # collects the placeholders in the order command, binds, env use them
    gpu = _gpu_vendor(job, part, effective_gpu_vendor(job, cfg))
    mpi = mpi_plan(job, cfg)
    call = container_call(job, cfg, image, tv, mpi, gpu)
    argv = build_argv(call.call)
    env = container_env(job, cfg, tv, mpi)
    computed = env_commands(job, cfg)
    rt = run_time(tv.marks, call.checks)
    exports = _task_exports(job, tv)
    prefix = mpi.prefix
    if call.checks and prefix[:1] == ("srun",):
        prefix = (*prefix, "--kill-on-bad-exit=1")  # one rank failing a check ends the step
    return JobContext(
        sbatch=tuple(
            sbatch_lines(
                job,
                cfg,
                array=tasks.array,
                comment=f"hpcb:{tracking.submission_id}" if tracking else None,
                dependency=dependency_value(job),
            )
        ),
        source=job.source,
        image_ref=image.ref,
        image_digest=image.digest,
        image_sha256=image.sif_sha256,
        submission_id=tracking.submission_id if tracking else None,
        notes=_notes(job),
        task_offset=tasks.offset,
        outcomes_dir=tracking.outcomes_dir if tracking else None,
        signals=TRAPPED_SIGNALS,
        task_formats=tuple(TaskFormat(var, fmt) for var, fmt in sorted(tv.formats.items())),
        input_arrays=_input_arrays(job, tv, tasks.ids),
        task_exports=exports,
        modules=(*cfg.runtime.modules, *job.modules),
        container_env=env,
        pre=job.pre,
        post=job.post,
        mkdirs=call.mkdirs,
        launcher=_launcher(job, cfg, exports, rt),
        container=group_argv(argv, cfg.runtime.flavor),
        launch_prefix=prefix,
        runtime_marks=tuple(RuntimeMark(var, key) for key, var in rt.marks),
        runtime_env=runtime_env(job, cfg),
        env_commands=computed,
        run_time_checks=bool(call.checks or computed or rt.env_names),
    )


def _task_exports(job: JobSpec, tv: TaskVars) -> tuple[TaskExport, ...]:
    """``HPCBRIDGE_TASK`` always; ``HPCBRIDGE_INPUT``, ``_NAME``, ``_STEM`` for jobs with
    inputs (which makes every input field used, so the script embeds them all)."""
    exports = [TaskExport(TASK_EXPORTS["task"], "hpcb_task")]
    if job.inputs:
        tv.inputs.update(INPUT_VARS)
        exports.extend(TaskExport(TASK_EXPORTS[f], var) for f, var in INPUT_VARS.items())
    return tuple(exports)


def _launcher(
    job: JobSpec, cfg: Config, exports: tuple[TaskExport, ...], rt: RunTime
) -> tuple[Arg, ...]:
    """The per-task launcher: forwards Slurm/MPI/GPU variables, the site's env.allow,
    the job's host_env and the task exports into the container; resolves run-time
    values and checks (``rt``) on the node."""
    prefixes, names = launcher.split_allow(cfg.env.allow)
    job_prefixes, job_names = launcher.split_allow(job.host_env, "host_env")
    argv = launcher.launcher_argv(
        [*launcher.FORWARD_PREFIXES, *prefixes, *job_prefixes],
        [*launcher.FORWARD_NAMES, *names, *job_names, *(e.name for e in exports)],
        env_prefix(cfg.runtime.flavor),
        # MPI ranks need the PMIx server directory (in Slurm's spool) inside
        bind_dirs_from=("PMIX_SERVER_TMPDIR",) if job.mpi.enabled else (),
        run_time=rt if rt.needed else None,
    )
    return tuple(argv)


def _notes(job: JobSpec) -> tuple[str, ...]:
    notes = []
    if job.mpi.enabled and job.mpi.flavor == "unknown":
        notes.append(
            "the image's MPI flavour is unknown; set mpi.flavor so hpcbridge can refuse "
            "launcher/PMI pairings known not to work"
        )
    if job.pwd_key == "workdir":
        notes.append(
            "workdir is the old name of pwd (the container's working directory, --pwd); "
            "Apptainer's --workdir is [apptainer] workdir"
        )
    return tuple(notes)


def _tasks(job: JobSpec, chunk: Optional[ArrayChunk]) -> _Tasks:
    if chunk is None:
        if job.array is None:
            return _Tasks(None, (0,), 0)
        return _Tasks(job.array.spec, job.array.indices, 0)
    if job.array is None:
        raise JobSpecError("an array chunk was given for a job that is not an array")
    local = parse_array(chunk.indices, "chunk")
    spec = local.spec
    if local.throttle is None and job.array.throttle:
        spec = f"{spec}%{job.array.throttle}"
    ids = tuple(i + chunk.offset for i in local.indices)
    missing = sorted(set(ids) - set(job.array.indices))
    if missing:
        raise JobSpecError(f"array chunk has task {missing[0]}, which the job does not have")
    return _Tasks(spec, ids, chunk.offset)


def _gpu_vendor(job: JobSpec, part: Optional[Partition], vendor: Optional[str]) -> Optional[str]:
    if not job.gpu_count:
        return None
    if part is not None and not part.has_gpus:
        raise JobSpecError(
            f"the job asks for {job.gpu_count} GPU(s) but partition {part.name!r} has none",
            "choose a GPU partition (resources.partition) or drop the GPU request",
        )
    if vendor is None:
        raise JobSpecError(
            "the job asks for GPUs but their vendor is unknown",
            'set gpu.vendor = "nvidia" or "amd" (or gpu_vendor of the partition in the site config)',
        )
    return vendor


def _input_arrays(job: JobSpec, tv: TaskVars, task_ids: tuple[int, ...]) -> tuple[InputArray, ...]:
    if not job.inputs:
        return ()
    out: list[InputArray] = []
    for field, var in INPUT_VARS.items():
        if field not in tv.inputs:
            continue
        entries = tuple(
            InputEntry(t, input_fields(job.input_for(t) or "")[field]) for t in task_ids
        )
        out.append(InputArray(field, var, var + "s", entries))
    return tuple(out)


def _check_input_chars(job: JobSpec) -> None:
    """Per-task values end up in --mount CSV fields: refuse a double quote there."""
    for path in job.inputs:
        if '"' in path:
            raise JobSpecError(
                f"input path {path!r} contains a double quote",
                "rename the file; per-task binds cannot carry it",
            )
