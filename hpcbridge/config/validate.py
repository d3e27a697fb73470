"""Check a job against the site configuration; resolve site-dependent job values.

:func:`validate_job` is shared by ``render``, ``submit`` and ``doctor``; it looks
at the file system only to check that bind sources, overlays and inputs exist
(``os.path`` calls).  Run-time paths (``$TMPDIR/x``, ``ov{rank}.ext3``) are
checked by the task on its node instead; here only their literal directory prefix
meets the site's deny/allow lists.  The ``effective_*`` helpers are pure and tell
the renderer what the site decides for a job.
"""

from __future__ import annotations

import os
from typing import Optional

from hpcbridge.config.schema import Config, Partition
from hpcbridge.errors import JobSpecError
from hpcbridge.job.flags import denied_flags
from hpcbridge.job.spec import JobSpec, bad_pairing
from hpcbridge.job.values import expand, parse_template, unknown_hint
from hpcbridge.slurm_syntax import check_pmi, format_mem, format_time, parse_srun_option


def resolve_partition(job: JobSpec, cfg: Config) -> Optional[Partition]:
    """The site's description of the job's partition (or of the default one).

    None when the site describes no partitions (any name is passed to Slurm) or
    the job names none and no partition is marked default.  A name the site does
    not know is a JobSpecError listing the valid names.
    """
    name = job.resources.partition
    if name is None:
        return cfg.default_partition
    if not cfg.partitions:
        return None
    if name not in cfg.partitions:
        raise JobSpecError(
            f"resources.partition = {name!r} is not a partition of this site",
            unknown_hint(name, cfg.partitions, "partitions"),
        )
    return cfg.partitions[name]


def effective_partition_name(job: JobSpec, cfg: Config) -> Optional[str]:
    part = resolve_partition(job, cfg)
    return job.resources.partition or (part.name if part else None)


def effective_time(job: JobSpec, cfg: Config) -> Optional[int]:
    """The time limit in seconds: the job's, else the partition's default_time."""
    if job.resources.time is not None:
        return job.resources.time
    part = resolve_partition(job, cfg)
    return part.default_time if part else None


def effective_gpu_vendor(job: JobSpec, cfg: Config) -> Optional[str]:
    """``nvidia``/``amd`` when the job uses GPUs (job's vendor, else the partition's)."""
    if not job.gpu_count and job.gpu.vendor is None:
        return None
    if job.gpu.vendor is not None:
        return job.gpu.vendor
    part = resolve_partition(job, cfg)
    return part.gpu_vendor if part is not None and part.has_gpus else None


def effective_gres_name(job: JobSpec, cfg: Config) -> str:
    part = resolve_partition(job, cfg)
    return (part.gres_name if part and part.gres_name else None) or cfg.gpu.gres_name


def effective_pmi(job: JobSpec, cfg: Config) -> Optional[str]:
    """``srun --mpi=`` value: the job's pmi, else by the image's MPI flavour
    (mpi.openmpi_pmi / mpi.mpich_pmi), else the partition's default_mpi, else mpi.pmi."""
    if job.mpi.type != "srun":
        return None
    if job.mpi.pmi:
        return job.mpi.pmi
    if job.mpi.flavor in ("openmpi", "mpich"):
        return cfg.mpi.pmi_for(job.mpi.flavor)
    part = resolve_partition(job, cfg)
    return (part.default_mpi if part else None) or cfg.mpi.pmi


def check_time_limit(job: JobSpec, cfg: Config) -> None:
    """Refuse a time limit (the job's, else the partition's default) above the
    partition's max_time."""
    part = resolve_partition(job, cfg)
    time = effective_time(job, cfg)
    if part is not None and time is not None and part.max_time is not None and time > part.max_time:
        raise JobSpecError(
            f"resources.time = {format_time(time)} is above the maximum {format_time(part.max_time)} "
            f"of partition {effective_partition_name(job, cfg)!r}",
            f"ask for at most {format_time(part.max_time)} or choose another partition",
        )


def validate_job(job: JobSpec, cfg: Config) -> None:
    """Raise JobSpecError (one line, value + fix) when the site cannot run ``job``."""
    part = resolve_partition(job, cfg)
    pname = effective_partition_name(job, cfg)
    check_time_limit(job, cfg)
    _check_resources(job, part, pname)
    _check_gpu(job, cfg, part, pname)
    _check_mpi(job, cfg)
    if cfg.limits.max_tasks is not None and len(job.task_ids) > cfg.limits.max_tasks:
        raise JobSpecError(
            f"the array has {len(job.task_ids)} tasks, above this site's limit of {cfg.limits.max_tasks}",
            "split the work into several jobs",
        )
    denied = denied_flags(job.apptainer, job.apptainer_env, cfg.runtime.deny_flags)
    if denied:
        raise JobSpecError(
            f"{denied[0]}: this site does not allow --{denied[1]} "
            f"(runtime.deny_flags, {cfg.source_of('runtime.deny_flags')})",
            "remove it, or ask the site admins",
        )
    _check_paths(job, cfg)


def _check_paths(job: JobSpec, cfg: Config) -> None:
    """Bind sources, overlays and inputs: the site's policy, and that they exist."""
    for i, bind in enumerate(job.binds):
        problem = bind_problem(bind.src, bind.per_task, cfg)
        if problem:
            raise JobSpecError(f"binds[{i}].src = {bind.src!r} {problem[0]}", problem[1])
    for i, overlay in enumerate(job.overlays):
        if overlay.per_task and not overlay.run_time:
            paths = [expand(overlay.path, t, job.input_for(t)) for t in job.task_ids]
        else:
            paths = [overlay.path]
        for path in dict.fromkeys(paths):
            problem = bind_problem(path, overlay.run_time, cfg)
            if problem:
                raise JobSpecError(f"overlays[{i}] = {path!r} {problem[0]}", problem[1])
    for path in job.inputs:
        problem = _policy_problem(path, cfg)
        if problem:
            raise JobSpecError(f"input {path!r} {problem[0]}", problem[1])
        if not os.path.exists(path):
            raise JobSpecError(
                f"input {path!r} does not exist",
                "fix the path in inputs (relative paths are relative to the job file)",
            )


def _check_resources(job: JobSpec, part: Optional[Partition], pname: Optional[str]) -> None:
    if part is None:
        return
    r = job.resources
    if part.max_nodes is not None and r.nodes is not None and r.nodes > part.max_nodes:
        raise JobSpecError(
            f"resources.nodes = {r.nodes} is above the {part.max_nodes} nodes of partition {pname!r}",
            f"ask for at most {part.max_nodes}",
        )
    if (
        part.cpus_per_node is not None
        and r.cpus_per_task is not None
        and r.cpus_per_task > part.cpus_per_node
    ):
        raise JobSpecError(
            f"resources.cpus_per_task = {r.cpus_per_task} is above the {part.cpus_per_node} CPUs "
            f"per node of partition {pname!r}",
            f"ask for at most {part.cpus_per_node}",
        )
    if part.mem_per_node is not None and r.mem is not None and r.mem > part.mem_per_node:
        raise JobSpecError(
            f"resources.mem = {format_mem(r.mem)} is above the {format_mem(part.mem_per_node)} "
            f"per node of partition {pname!r}",
            f"ask for at most {format_mem(part.mem_per_node)}",
        )


def _check_gpu(job: JobSpec, cfg: Config, part: Optional[Partition], pname: Optional[str]) -> None:
    wants = job.gpu_count > 0 or job.gpu.vendor is not None
    if not wants or part is None:
        return
    if not part.has_gpus:
        gpu_parts = [p.name for p in cfg.partitions.values() if p.has_gpus]
        raise JobSpecError(
            f"GPUs requested on partition {pname!r}, which has no GPUs",
            f"choose one of: {', '.join(gpu_parts)}" if gpu_parts else "remove the GPU request",
        )
    if job.gpu.vendor is not None and job.gpu.vendor != part.gpu_vendor:
        raise JobSpecError(
            f"gpu.vendor = {job.gpu.vendor!r} but partition {pname!r} has {part.gpu_vendor} GPUs",
            f'set gpu.vendor = "{part.gpu_vendor}" or choose another partition',
        )
    if part.gpus_per_node is not None and job.gpu_count > part.gpus_per_node:
        raise JobSpecError(
            f"{job.gpu_count} GPUs per node requested, partition {pname!r} has {part.gpus_per_node}",
            f"ask for at most {part.gpus_per_node}",
        )


def _check_mpi(job: JobSpec, cfg: Config) -> None:
    pmi = effective_pmi(job, cfg)
    if pmi is not None:
        what = "mpi.pmi" if job.mpi.pmi else f"the site's PMI for this job (mpi.pmi = {pmi!r})"
        check_pmi(pmi, what, cfg.mpi.pmi_types)
    problem = bad_pairing(job.mpi.flavor, pmi)
    if problem:
        raise JobSpecError(
            f"mpi.flavor = {job.mpi.flavor!r} with the site's PMI {pmi!r} does not work", problem
        )
    for i, option in enumerate(job.mpi.srun_options):
        parse_srun_option(option, f"mpi.srun_options[{i}]", cfg.mpi.srun_options)
    if job.mpi.model == "bind" and job.mpi.host_mpi_dir:
        problem_dir = bind_problem(job.mpi.host_mpi_dir, False, cfg)
        if problem_dir:
            raise JobSpecError(
                f"mpi.host_mpi_dir = {job.mpi.host_mpi_dir!r} {problem_dir[0]}", problem_dir[1]
            )


def _static_prefix(src: str) -> Optional[str]:
    """The directory part of a templated path before its first placeholder or ``$VAR``
    (None when it starts with one)."""
    parts = parse_template(src, "bind", env_refs=True)
    literal = ""
    for part in parts:
        if not isinstance(part, str):
            break
        literal += part
    if not literal:
        return None
    return (
        os.path.dirname(literal)
        if literal and not literal.endswith("/")
        else literal.rstrip("/") or "/"
    )


def bind_problem(src: str, per_task: bool, cfg: Config) -> Optional[tuple[str, str]]:
    """(what is wrong, fix) for a bind source under the site policy, or None when fine.

    Sources with placeholders or ``$VAR`` are checked by their literal directory
    prefix (per-task ones are created per task, run-time ones checked on the node);
    others must exist and pass the deny/allow lists (symlinks resolved).
    """
    parts = parse_template(src, "bind", env_refs=True)
    if per_task or not all(isinstance(p, str) for p in parts):
        prefix = _static_prefix(src)
        if prefix is None:
            return None  # starts with {input} (checked one by one) or a variable (on the node)
        return _policy_problem(prefix, cfg, tree_only=True)
    path = "".join(p for p in parts if isinstance(p, str))  # {{, }} and $$ unescaped
    problem = _policy_problem(path, cfg)
    if problem:
        return problem
    if not os.path.exists(path):
        return ("does not exist", "create it, fix the path, or make it per-task with {task}")
    return None


def _policy_problem(path: str, cfg: Config, tree_only: bool = False) -> Optional[tuple[str, str]]:
    """Deny/allow-list check on the real path (symlinks resolved)."""
    real = os.path.realpath(path)
    for candidate in dict.fromkeys((os.path.normpath(path), real)):
        for entry in cfg.binds.deny:
            tree = entry.endswith("/**")
            base = entry[:-3] or "/"
            hit = _under(candidate, base) if tree else (candidate == entry and not tree_only)
            if hit:
                where = cfg.source_of("binds.deny")
                return (
                    f"is denied by the site's bind deny-list: entry {entry!r} from {where}",
                    "bind a directory below it, or ask the site admins",
                )
    if cfg.binds.allow is not None and not any(
        _under(real, a.rstrip("*").rstrip("/") or "/") for a in cfg.binds.allow
    ):
        return (
            "is outside the site's bind allow-list",
            f"bind something under {', '.join(cfg.binds.allow)}",
        )
    return None


def _under(path: str, base: str) -> bool:
    return base == "/" or path == base or path.startswith(base.rstrip("/") + "/")
