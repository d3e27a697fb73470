"""Check a job against the site configuration; resolve site-dependent job values.

:func:`validate_job` is shared by ``render``, ``submit`` and ``doctor``; it looks
at the file system only to check bind sources (``os.path`` calls in
:func:`_bind_source_problem`).  The ``effective_*`` helpers are pure and tell
the renderer what the site decides for a job.
"""

from __future__ import annotations

import os
from typing import Optional

from hpcbridge.config.schema import Config, Partition
from hpcbridge.errors import JobSpecError
from hpcbridge.job.spec import BAD_PAIRINGS, JobSpec
from hpcbridge.job.values import INPUT_FIELDS, Field, parse_template, unknown_hint
from hpcbridge.slurm_syntax import format_mem, format_time


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
    for i, bind in enumerate(job.binds):
        problem = bind_problem(bind.src, bind.per_task, cfg)
        if problem:
            raise JobSpecError(f"binds[{i}].src = {bind.src!r} {problem[0]}", problem[1])
    for path in job.inputs:
        problem = _policy_problem(path, cfg)
        if problem:
            raise JobSpecError(f"input {path!r} {problem[0]}", problem[1])


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
    if pmi is not None and (job.mpi.flavor, pmi) in BAD_PAIRINGS:
        raise JobSpecError(
            f"mpi.flavor = {job.mpi.flavor!r} with the site's PMI {pmi!r} does not work",
            BAD_PAIRINGS[(job.mpi.flavor, pmi)],
        )
    if job.mpi.model == "bind" and job.mpi.host_mpi_dir:
        problem = bind_problem(job.mpi.host_mpi_dir, False, cfg)
        if problem:
            raise JobSpecError(
                f"mpi.host_mpi_dir = {job.mpi.host_mpi_dir!r} {problem[0]}", problem[1]
            )


def _static_prefix(src: str) -> str:
    """The directory part of a per-task source before its first placeholder."""
    literal = ""
    for part in parse_template(src, "bind"):
        if not isinstance(part, str):
            break
        literal += part
    return (
        os.path.dirname(literal)
        if literal and not literal.endswith("/")
        else literal.rstrip("/") or "/"
    )


def bind_problem(src: str, per_task: bool, cfg: Config) -> Optional[tuple[str, str]]:
    """(what is wrong, fix) for a bind source under the site policy, or None when fine.

    Per-task sources are checked by their literal directory prefix (they are created
    per task); others must exist and pass the deny/allow lists (symlinks resolved).
    """
    if per_task:
        first = parse_template(src, "bind")[0]
        if isinstance(first, Field) and first.name in INPUT_FIELDS:
            return None  # the inputs themselves are checked one by one
        return _policy_problem(_static_prefix(src), cfg, tree_only=True)
    problem = _policy_problem(src, cfg)
    if problem:
        return problem
    if not os.path.exists(src):
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
