"""``render_job``: a JobSpec + Config + converted image -> an sbatch script (pure).

The only I/O is reading the Jinja templates.  All shell text that carries values
is built here as argv lists of ``str``/:class:`~hpcbridge.render.words.Word` and
printed by the templates through the ``shquote`` filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import input_fields
from hpcbridge.render import launcher
from hpcbridge.render.apptainer import BindArg, ContainerCall, build_argv, env_prefix, has_flag
from hpcbridge.render.flags import flags_for
from hpcbridge.render.header import dependency_value, sbatch_lines
from hpcbridge.render.mpi import plan as mpi_plan
from hpcbridge.render.placeholders import INPUT_VARS, TaskVars
from hpcbridge.render.types import ArrayChunk, RenderedJob, ResolvedImage, TrackingContext
from hpcbridge.render.words import Arg, Var, Word
from hpcbridge.slurm_syntax import format_time, parse_array

if TYPE_CHECKING:
    from hpcbridge.config.schema import Config, Partition
    from hpcbridge.job.spec import Bind, JobSpec

#: Signals the script traps: it records them and forwards them to the command.
SIGNALS: tuple[tuple[str, int], ...] = (
    ("TERM", 15),
    ("INT", 2),
    ("USR1", 10),
    ("USR2", 12),
    ("XCPU", 24),
)
TASK_EXPORTS = {
    "task": "HPCBRIDGE_TASK",
    "input": "HPCBRIDGE_INPUT",
    "input_name": "HPCBRIDGE_INPUT_NAME",
    "input_stem": "HPCBRIDGE_INPUT_STEM",
}
#: sbatch refuses scripts larger than this by default (SchedulerParameters max_script_size).
MAX_SCRIPT_BYTES = 4 * 1024 * 1024


def render_job(
    job: JobSpec,
    cfg: Config,
    *,
    image: ResolvedImage,
    tracking: Optional[TrackingContext] = None,
    chunk: Optional[ArrayChunk] = None,
) -> RenderedJob:
    """Render the sbatch script of ``job`` (or of one array ``chunk`` of it)."""
    from hpcbridge.config import effective_gpu_vendor, resolve_partition

    part = resolve_partition(job, cfg)
    _check_time(job, part)
    flavor = cfg.runtime.flavor
    array, task_ids, offset = _array(job, chunk)
    tv = TaskVars()

    # the command inside the container
    if job.command is not None:
        command: list[Arg] = tv.words(job.command, "command")
    else:
        command = ["/bin/sh", "-c", job.script or "", "hpcb-script"]

    # GPUs and MPI
    gpu = _gpu_vendor(job, part, effective_gpu_vendor(job, cfg))
    mpi = mpi_plan(job, cfg)

    # binds: site defaults, MPI, the job's own
    binds: list[BindArg] = []
    mkdirs: list[Arg] = []
    all_binds: list[Bind] = [*cfg.binds.default, *job.binds]
    if job.mpi.enabled:
        all_binds.extend(cfg.mpi.binds)
    input_in_binds = False
    for i, b in enumerate(all_binds):
        src = tv.word(b.src, f"binds[{i}].src")
        dst = tv.word(b.dst, f"binds[{i}].dst")
        for w in (src, dst):
            if isinstance(w, Word) and set(w.variables()) & set(INPUT_VARS.values()):
                input_in_binds = True
        binds.append(BindArg(src, dst, b.read_only))
        if b.per_task and not b.read_only:
            mkdirs.append(src)
    if mpi.bind_dir:
        binds.append(BindArg(mpi.bind_dir, mpi.bind_dir, True))

    # environment inside the container
    prefix = env_prefix(flavor)
    container_env: list[tuple[str, str, Arg]] = []
    no_eval = has_flag(flavor, cfg.runtime.version, "--no-eval")
    for name, value in job.env.items():
        _check_runtime_env(name, value)
        if not no_eval and any(c in value for c in '$`\\"'):
            raise JobSpecError(
                f"env.{name} = {value!r}: {flavor} {cfg.runtime.version} would shell-evaluate "
                "it in the container (--no-eval needs Apptainer >= 1.1)",
                'upgrade the runtime (runtime.version) or avoid $ ` \\ " in the value',
            )
        container_env.append(("", prefix + name, tv.word(value, f"env.{name}")))
    for note, name, value in mpi.env:
        container_env.append((note, prefix + name, value))
    if mpi.bind_dir:
        note = "MPI bind model: the host MPI comes first on PATH and LD_LIBRARY_PATH"
        container_env.append((note, prefix + "PREPEND_PATH", f"{mpi.bind_dir}/bin"))
        if "LD_LIBRARY_PATH" not in job.env:
            container_env.append(("", prefix + "LD_LIBRARY_PATH", f"{mpi.bind_dir}/lib"))

    workdir: Arg = job.workdir or image.workdir or Word.of(Var("PWD"))
    if input_in_binds:
        _check_input_chars(job)

    call = ContainerCall(
        image=image.sif_path,
        command=tuple(command),
        flavor=flavor,
        executable=cfg.runtime.executable,
        version=cfg.runtime.version,
        binds=tuple(binds),
        pwd=workdir,
        gpu=gpu,
    )
    argv = build_argv(call)

    # per-task variables forwarded by the launcher
    prefixes, names = launcher.split_allow(cfg.env.allow)
    exports = [("HPCBRIDGE_TASK", "hpcb_task")]
    if job.inputs:
        # $HPCBRIDGE_INPUT, _NAME and _STEM are always there for jobs with inputs
        tv.inputs.update(INPUT_VARS)
        for field in INPUT_VARS:
            exports.append((TASK_EXPORTS[field], INPUT_VARS[field]))
    launch = launcher.launcher_argv(
        [*launcher.FORWARD_PREFIXES, *prefixes],
        [*launcher.FORWARD_NAMES, *names, *(n for n, _ in exports)],
        prefix,
        # MPI ranks need the PMIx server directory (in Slurm's spool) inside
        bind_dirs_from=("PMIX_SERVER_TMPDIR",) if job.mpi.enabled else (),
    )

    notes = []
    if job.mpi.enabled and job.mpi.flavor == "unknown":
        notes.append(
            "the image's MPI flavour is unknown; set mpi.flavor so hpcbridge can refuse "
            "launcher/PMI pairings known not to work"
        )
    context: dict[str, object] = {
        "sbatch": sbatch_lines(
            job,
            cfg,
            array=array,
            comment=f"hpcb:{tracking.submission_id}" if tracking else None,
            dependency=dependency_value(job),
        ),
        "source": job.source,
        "image_ref": image.ref,
        "image_digest": image.digest,
        "image_sha256": image.sif_sha256,
        "submission_id": tracking.submission_id if tracking else None,
        "notes": notes,
        "task_offset": offset,
        "outcomes_dir": tracking.outcomes_dir if tracking else None,
        "signals": SIGNALS,
        "task_formats": sorted(tv.formats.items()),
        "input_arrays": _input_arrays(job, tv, task_ids),
        "task_exports": exports,
        "modules": [*cfg.runtime.modules, *job.modules],
        "container_env": container_env,
        "pre": job.pre,
        "post": job.post,
        "mkdirs": mkdirs,
        "launcher": launch,
        "container": group_argv(argv, flavor),
        "launch_prefix": list(mpi.prefix),
    }
    from hpcbridge.render.environment import render_template

    site_dir = str(cfg.templates.dir) if cfg.templates.dir else None
    script = render_template("job.sh.j2", context, site_dir)
    if len(script.encode()) > MAX_SCRIPT_BYTES:
        raise JobSpecError(
            f"the script for {len(task_ids)} tasks is {len(script.encode()) // 1024} KiB, "
            "above sbatch's 4 MiB default limit",
            "submit fewer inputs per job (split the inputs list)",
        )
    return RenderedJob(script, job.name, array, task_ids, {})


#: Variables the runtime's own action shell sets, overrides or cannot take (found by
#: running Apptainer 1.4.5: APPTAINERENV_EUID even stops the container from starting).
RUNTIME_ENV_REFUSED = {
    "EUID": "it is read-only in Apptainer's action shell and stops the container",
    "PWD": "the runtime sets it to the working directory; set workdir instead",
    "SHLVL": "the runtime's shell sets it",
    "PPID": "the runtime's shell sets it",
    "OPTIND": "the runtime's shell sets it",
    "IFS": "the runtime's shell resets it",
    "PROMPT_COMMAND": "the runtime rewrites it",
}


def _check_runtime_env(name: str, value: str) -> None:
    if name in RUNTIME_ENV_REFUSED:
        raise JobSpecError(
            f"env name {name!r} cannot be set in the container", RUNTIME_ENV_REFUSED[name]
        )
    odd = [c for c in value if c in "\x80\x81"]
    if odd:
        raise JobSpecError(
            f"env.{name} = {value!r} contains U+{ord(odd[0]):04X}, which Apptainer's "
            "environment injection drops or mangles (found on Apptainer 1.4.5)",
            "remove the character from the value",
        )
    if name == "PATH" and not value:
        raise JobSpecError(
            "env.PATH is empty: Apptainer ignores an empty PATH and keeps its default",
            "give directories, or remove env.PATH",
        )


def _check_time(job: JobSpec, part: Optional[Partition]) -> None:
    time = job.resources.time
    if part is not None and part.max_time is not None and time is not None and time > part.max_time:
        raise JobSpecError(
            f"resources.time = {format_time(time)} is above the maximum "
            f"{format_time(part.max_time)} of partition {part.name!r}",
            "ask for less time or choose another partition",
        )


def _array(job: JobSpec, chunk: Optional[ArrayChunk]) -> tuple[Optional[str], tuple[int, ...], int]:
    """(the --array value, the global task ids, the index offset)."""
    if chunk is None:
        if job.array is None:
            return None, (0,), 0
        return job.array.spec, job.array.indices, 0
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
    return spec, ids, chunk.offset


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


def _input_arrays(job: JobSpec, tv: TaskVars, task_ids: tuple[int, ...]) -> list[dict[str, object]]:
    if not job.inputs:
        return []
    out: list[dict[str, object]] = []
    for field in INPUT_VARS:
        if field not in tv.inputs:
            continue
        values = [(t, input_fields(job.input_for(t) or "")[field]) for t in task_ids]
        var = INPUT_VARS[field]
        out.append({"field": field, "var": var, "array": var + "s", "entries": values})
    return out


def _check_input_chars(job: JobSpec) -> None:
    """Per-task values end up in --mount CSV fields: refuse a double quote there."""
    for path in job.inputs:
        if '"' in path:
            raise JobSpecError(
                f"input path {path!r} contains a double quote",
                "rename the file; per-task binds cannot carry it",
            )


def group_argv(argv: list[Arg], flavor: str) -> list[list[Arg]]:
    """Split a runtime argv into display lines: head, one option per line, image, command."""
    sub_at = next(i for i, a in enumerate(argv) if a in ("exec", "run", "shell"))
    groups: list[list[Arg]] = [list(argv[: sub_at + 1])]
    table = flags_for(flavor, "action", str(argv[sub_at]))
    i = sub_at + 1
    while i < len(argv) and isinstance(argv[i], str) and str(argv[i]).startswith("-"):
        info = table.get(str(argv[i]).split("=", 1)[0])
        if info is not None and info.takes_value and "=" not in str(argv[i]):
            groups.append([argv[i], argv[i + 1]])
            i += 2
        else:
            groups.append([argv[i]])
            i += 1
    groups.append([argv[i]])
    if argv[i + 1 :]:
        groups.append(list(argv[i + 1 :]))
    return groups
