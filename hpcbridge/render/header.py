"""``#SBATCH`` directives of a job (pure).

sbatch reads directive values itself (no shell): it splits on whitespace,
honours ``"..."``/``'...'`` quoting and backslash escapes, treats an unquoted
``#`` as the start of a comment, and treats a line containing ``hetjob`` or
``packjob`` as a heterogeneous-job separator.  :func:`sbatch_value` quotes a
value accordingly and refuses what cannot be written.
"""

from __future__ import annotations

import re
from typing import Optional

from hpcbridge.config.schema import Config, Partition
from hpcbridge.config.validate import effective_gres_name, resolve_partition
from hpcbridge.errors import JobSpecError
from hpcbridge.job.spec import JobSpec
from hpcbridge.job.values import parse_template
from hpcbridge.slurm_syntax import format_mem, format_time

_PLAIN = re.compile(r"[A-Za-z0-9_./:=,+@%^-]+\Z")


def sbatch_value(value: str, what: str) -> str:
    """One directive value, quoted for sbatch's own parser when needed."""
    if any(c in value for c in "\n\r\x00"):
        raise JobSpecError(f"{what} = {value!r} contains a line break", "write it on one line")
    low = value.lower()
    if "hetjob" in low or "packjob" in low:
        raise JobSpecError(
            f"{what} = {value!r} contains 'hetjob'/'packjob'",
            "sbatch would read the line as a heterogeneous-job separator; rename it",
        )
    if _PLAIN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(text: str, what: str) -> str:
    """A log pattern with ``{{``/``}}`` unescaped (no placeholders are allowed there)."""
    return "".join(p for p in parse_template(text, what, ()) if isinstance(p, str))


def sbatch_lines(
    job: JobSpec,
    cfg: Config,
    *,
    array: Optional[str],
    comment: Optional[str],
    dependency: Optional[str],
) -> list[str]:
    """``--option=value`` strings, in a fixed order, for the ``#SBATCH`` header."""
    r = job.resources
    part = resolve_partition(job, cfg)
    out: list[str] = [f"--job-name={sbatch_value(job.name, 'name')}"]

    def add(option: str, value: Optional[object], what: str) -> None:
        if value is not None:
            out.append(f"--{option}={sbatch_value(str(value), what)}")

    partition = r.partition if r.partition is not None else (part.name if part else None)
    add("partition", partition, "resources.partition")
    add("account", r.account, "resources.account")
    add("qos", r.qos, "resources.qos")
    time = r.time if r.time is not None else (part.default_time if part else None)
    add("time", None if time is None else format_time(time), "resources.time")
    add("nodes", r.nodes, "resources.nodes")
    add("ntasks", r.ntasks, "resources.ntasks")
    add("ntasks-per-node", r.ntasks_per_node, "resources.ntasks_per_node")
    add("cpus-per-task", r.cpus_per_task, "resources.cpus_per_task")
    add("mem", None if r.mem is None else format_mem(r.mem), "resources.mem")
    add(
        "mem-per-cpu",
        None if r.mem_per_cpu is None else format_mem(r.mem_per_cpu),
        "resources.mem_per_cpu",
    )
    out.extend(_gpu_lines(job, cfg, part))
    add("constraint", r.constraint, "resources.constraint")
    if r.exclusive:
        out.append("--exclusive")
    if array is not None:
        out.append(f"--array={array}")
    output = _literal(job.output, "output") if job.output else None
    error = _literal(job.error, "error") if job.error else None
    default_log = "%x_%A_%a.out" if array is not None else "%x_%j.out"
    add("output", output or default_log, "output")
    add("error", error, "error")
    add("dependency", dependency, "dependencies")
    add("signal", job.signal, "signal")
    if job.requeue is True:
        out.append("--requeue")
    elif job.requeue is False:
        out.append("--no-requeue")
    add("comment", comment, "comment")
    for i, extra in enumerate(job.extra_sbatch):
        sbatch_value(extra, f"extra_sbatch[{i}]")  # refuses hetjob/packjob, line breaks
        out.append(extra)
    return out


def _gpu_lines(job: JobSpec, cfg: Config, part: Optional[Partition]) -> list[str]:
    r = job.resources
    if r.gres:
        return [f"--gres={r.gres}"]
    if r.gpus:
        return [f"--gpus={r.gpus}"]
    if r.gpus_per_node:
        return [f"--gpus-per-node={r.gpus_per_node}"]
    if job.gpu.count:
        if cfg.gpu.request == "gpus":
            return [f"--gpus-per-node={job.gpu.count}"]
        return [f"--gres={effective_gres_name(job, cfg)}:{job.gpu.count}"]
    return []


def dependency_value(job: JobSpec) -> Optional[str]:
    """``afterok:1:2,singleton`` from the job's dependencies (Slurm ids only)."""
    parts: list[str] = []
    for dep in job.dependencies:
        for job_id in dep.ids:
            if not dep.is_slurm_id(job_id):
                raise JobSpecError(
                    f"dependency {dep.type}:{job_id} names an hpcbridge submission",
                    "use `hpcbridge submit`, which resolves submission ids to Slurm job ids",
                )
        parts.append(dep.type if not dep.ids else ":".join((dep.type, *dep.ids)))
    return ",".join(parts) if parts else None
