"""What a job puts on the runtime's command line and into its environment (pure).

:func:`container_call` turns a job into a :class:`~hpcbridge.render.apptainer.ContainerCall`
(binds, overlays, runtime flags, the command or the runscript's arguments), the
per-task bind sources to create and the run-time checks the launcher makes;
:func:`container_env` into the ``APPTAINERENV_*`` exports; :func:`runtime_env` and
:func:`env_commands` into the runtime's own variables and the values computed on
the node.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from hpcbridge.config.schema import Config
from hpcbridge.errors import JobSpecError
from hpcbridge.job.flags import PATH_FLAGS, flag_table
from hpcbridge.job.spec import Bind, JobSpec
from hpcbridge.job.values import Field, is_run_time, parse_template
from hpcbridge.render.apptainer import (
    BindArg,
    ContainerCall,
    OverlayArg,
    env_prefix,
    flag_args,
    has_flag,
)
from hpcbridge.render.context import ContainerEnv, EnvCommand, RuntimeEnv
from hpcbridge.render.mpi import MpiPlan
from hpcbridge.render.placeholders import INPUT_VARS, TaskVars
from hpcbridge.render.runtime import Check
from hpcbridge.render.types import ResolvedImage
from hpcbridge.render.words import Arg, Var, Word

#: Variables the runtime's own action shell sets, overrides or cannot take (found by
#: running Apptainer 1.4.5: APPTAINERENV_EUID even stops the container from starting).
RUNTIME_ENV_REFUSED = {
    "EUID": "it is read-only in Apptainer's action shell and stops the container",
    "PWD": "the runtime sets it to the working directory; set pwd instead",
    "SHLVL": "the runtime's shell sets it",
    "PPID": "the runtime's shell sets it",
    "OPTIND": "the runtime's shell sets it",
    "IFS": "the runtime's shell resets it",
    "PROMPT_COMMAND": "the runtime rewrites it",
}


class Call(NamedTuple):
    call: ContainerCall
    mkdirs: tuple[Arg, ...]  # per-task bind sources the batch script creates
    checks: tuple[Check, ...]  # run-time paths each rank checks (or creates) on its node


def container_call(
    job: JobSpec,
    cfg: Config,
    image: ResolvedImage,
    tv: TaskVars,
    mpi: MpiPlan,
    gpu: Optional[str],
) -> Call:
    """The runtime call of ``job`` (placeholders collected in ``tv`` in argv order)."""
    if job.run is not None:
        command: list[Arg] = tv.words(job.run, "run")
    elif job.command is not None:
        command = tv.words(job.command, "command")
    else:
        command = ["/bin/sh", "-c", job.script or "", "hpcb-script"]
    checks: list[Check] = []
    overlays = []
    for i, o in enumerate(job.overlays):
        path = tv.word(o.path, f"overlays[{i}]", env_refs=True)
        overlays.append(OverlayArg(path, o.read_only))
        if o.run_time:
            checks.append(Check("exists", f"overlays[{i}] = {o.path}", path))
    binds, mkdirs = _binds(job, cfg, tv, mpi, checks)
    global_flags: list[Arg] = []
    options: list[Arg] = []
    for flag in job.apptainer:
        value: object = flag.value
        if flag.name in PATH_FLAGS and isinstance(value, str):
            value = tv.word(value, f"apptainer.{flag.name}", env_refs=True)
            if flag.name == "workdir" and isinstance(value, Word) and _run_time(flag.value):
                checks.append(Check("exists", f"apptainer.workdir = {flag.value}", value))
        target = global_flags if flag_table()[flag.name].scope == "global" else options
        target.extend(flag_args(flag.name, value))
    call = ContainerCall(
        image=image.sif_path,
        command=tuple(command),
        flavor=cfg.runtime.flavor,
        executable=cfg.runtime.executable,
        version=cfg.runtime.version,
        subcommand=job.action,
        binds=binds,
        pwd=job.pwd or image.workdir or Word.of(Var("PWD")),
        gpu=gpu,
        global_flags=tuple(global_flags),
        extra_options=tuple(options),
        overlays=tuple(overlays),
        app=job.app,
    )
    return Call(call, mkdirs, tuple(checks))


def _run_time(text: object) -> bool:
    return isinstance(text, str) and is_run_time(parse_template(text, "path", env_refs=True))


def _binds(
    job: JobSpec, cfg: Config, tv: TaskVars, mpi: MpiPlan, checks: list[Check]
) -> tuple[tuple[BindArg, ...], tuple[Arg, ...]]:
    """Site defaults, the job's own, then MPI's; the per-task sources to create; the
    run-time sources each rank checks (appended to ``checks``)."""
    binds: list[BindArg] = []
    mkdirs: list[Arg] = []
    site = len(cfg.binds.default)
    all_binds: list[Bind] = [*cfg.binds.default, *job.binds]
    if job.mpi.enabled:
        all_binds.extend(cfg.mpi.binds)
    input_in_binds = False
    for i, b in enumerate(all_binds):
        own = site <= i < site + len(job.binds)  # the job's: $VAR is a run-time value
        src = tv.word(b.src, f"binds[{i}].src", env_refs=own)
        dst = tv.word(b.dst, f"binds[{i}].dst")
        for w in (src, dst):
            if isinstance(w, Word) and set(w.variables()) & set(INPUT_VARS.values()):
                input_in_binds = True
        binds.append(BindArg(src, dst, b.read_only, b.options))
        if own and _run_time(b.src):
            parts = parse_template(b.src, "src", env_refs=True)
            create = not b.read_only and not b.options and any(isinstance(p, Field) for p in parts)
            label = f"binds[{i - site}].src = {b.src}"
            checks.append(Check("mkdir" if create else "exists", label, src))
        elif b.per_task and not b.read_only and not b.options:
            mkdirs.append(src)
    if mpi.bind_dir:
        binds.append(BindArg(mpi.bind_dir, mpi.bind_dir, True))
    if input_in_binds:
        _check_input_chars(job)
    return tuple(binds), tuple(mkdirs)


def container_env(
    job: JobSpec, cfg: Config, tv: TaskVars, mpi: MpiPlan
) -> tuple[ContainerEnv, ...]:
    """The job's env, then MPI's settings, then the bind model's paths."""
    flavor, version = cfg.runtime.flavor, cfg.runtime.version
    prefix = env_prefix(flavor)
    out: list[ContainerEnv] = []
    no_eval = has_flag(flavor, version, "--no-eval")
    for name, value in job.env.items():
        _check_runtime_env(name, value)
        if not no_eval and any(c in value for c in '$`\\"'):
            raise JobSpecError(
                f"env.{name} = {value!r}: {flavor} {version} would shell-evaluate "
                "it in the container (--no-eval needs Apptainer >= 1.1)",
                'upgrade the runtime (runtime.version) or avoid $ ` \\ " in the value',
            )
        out.append(ContainerEnv("", prefix + name, tv.word(value, f"env.{name}")))
    for note, name, value in mpi.env:
        out.append(ContainerEnv(note, prefix + name, value))
    if mpi.bind_dir:
        note = "MPI bind model: the host MPI comes first on PATH and LD_LIBRARY_PATH"
        out.append(ContainerEnv(note, prefix + "PREPEND_PATH", f"{mpi.bind_dir}/bin"))
        if "LD_LIBRARY_PATH" not in job.env:
            out.append(ContainerEnv("", prefix + "LD_LIBRARY_PATH", f"{mpi.bind_dir}/lib"))
    return tuple(out)


def runtime_env(job: JobSpec, cfg: Config) -> tuple[RuntimeEnv, ...]:
    """``[apptainer_env]``'s ``APPTAINER_*`` variables; SingularityCE reads only
    ``SINGULARITY_*`` ones."""
    out = []
    for name, value in job.apptainer_env.items():
        if cfg.runtime.flavor == "singularity" and not name.startswith("SINGULARITY_"):
            raise JobSpecError(
                f"apptainer_env.{name}: SingularityCE reads only SINGULARITY_ variables",
                f"write SINGULARITY_{name.split('_', 1)[1]}",
            )
        out.append(RuntimeEnv(name, value))
    return tuple(out)


def env_commands(job: JobSpec, cfg: Config) -> tuple[EnvCommand, ...]:
    prefix = env_prefix(cfg.runtime.flavor)
    out = []
    for name, command in job.env_command.items():
        if name in RUNTIME_ENV_REFUSED:
            raise JobSpecError(
                f"env_command name {name!r} cannot be set in the container",
                RUNTIME_ENV_REFUSED[name],
            )
        out.append(EnvCommand(prefix + name, name, command))
    return tuple(out)


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


def _check_input_chars(job: JobSpec) -> None:
    """Per-task values end up in --mount CSV fields: refuse a double quote there."""
    for path in job.inputs:
        if '"' in path:
            raise JobSpecError(
                f"input path {path!r} contains a double quote",
                "rename the file; per-task binds cannot carry it",
            )
