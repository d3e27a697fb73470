"""Builders of the job-file sections: resources, GPU, MPI, modules, extra_sbatch lines
and dependencies (pure).  Binds and overlays: :mod:`hpcbridge.job.mounts`; the
container environment: :mod:`hpcbridge.job.environment`; runtime flags:
:mod:`hpcbridge.job.flags`."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from hpcbridge.errors import JobSpecError
from hpcbridge.job.fields import as_line, as_list, choice, opt_str, pos_int
from hpcbridge.job.schema import SCHEMA, check_keys
from hpcbridge.job.spec import (
    DEPENDENCY_TYPES,
    GPU_VENDORS,
    MPI_FLAVORS,
    MPI_MODELS,
    MPI_TYPES,
    Dependency,
    GpuSpec,
    MpiSpec,
    Resources,
    bad_pairing,
    gres_gpu_count,
)
from hpcbridge.slurm_syntax import PMI_NAME, parse_mem, parse_srun_option, parse_time

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_GRES = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)*")
# sbatch options that have a job-file field (or that hpcbridge sets itself)
_SBATCH_FIELDS = {
    "array": "array", "job-name": "name", "output": "output", "error": "error",
    "comment": "nothing: hpcbridge uses --comment to track the submission",
    "partition": "resources.partition", "account": "resources.account", "qos": "resources.qos",
    "time": "resources.time", "nodes": "resources.nodes", "ntasks": "resources.ntasks",
    "ntasks-per-node": "resources.ntasks_per_node", "cpus-per-task": "resources.cpus_per_task",
    "mem": "resources.mem", "mem-per-cpu": "resources.mem_per_cpu", "gpus": "resources.gpus",
    "gpus-per-node": "resources.gpus_per_node", "gres": "resources.gres",
    "constraint": "resources.constraint", "exclusive": "resources.exclusive",
    "dependency": "dependencies", "signal": "signal", "requeue": "requeue",
    "no-requeue": "requeue", "parsable": "nothing: hpcbridge adds it when submitting",
}  # fmt: skip


def parse_resources(value: Any) -> Resources:
    if not isinstance(value, dict):
        raise JobSpecError(
            f"resources = {value!r} is not a table", "write [resources] with keys below it"
        )
    check_keys(value, SCHEMA["resources"], "resources.")
    r: dict[str, Any] = {}
    for key in ("partition", "account", "qos", "constraint"):
        r[key] = opt_str(value, key, f"resources.{key}")
    for key in ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "gpus", "gpus_per_node"):
        r[key] = None if value.get(key) is None else pos_int(value[key], f"resources.{key}")
    if value.get("time") is not None:
        r["time"] = parse_time(value["time"], "resources.time")
    if value.get("mem") is not None and value.get("mem_per_cpu") is not None:
        raise JobSpecError(
            "resources.mem and resources.mem_per_cpu are both set",
            "keep one of them; Slurm accepts only one",
        )
    for key in ("mem", "mem_per_cpu"):
        if value.get(key) is not None:
            r[key] = parse_mem(value[key], f"resources.{key}")
    gres = opt_str(value, "gres", "resources.gres")
    if gres is not None and not all(_GRES.fullmatch(g.strip()) for g in gres.split(",")):
        raise JobSpecError(
            f"resources.gres = {gres!r} is not a gres list", 'write name[:type]:count, e.g. "gpu:2"'
        )
    r["gres"] = gres
    asked = [k for k in ("gpus", "gpus_per_node") if r.get(k)] + (
        ["gres"] if gres_gpu_count(gres) else []
    )
    if len(asked) > 1:
        raise JobSpecError(
            f"GPUs requested twice: resources.{asked[0]} and resources.{asked[1]}",
            "keep one of them",
        )
    exclusive = value.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise JobSpecError(
            f"resources.exclusive = {exclusive!r} is not true/false", "write exclusive = true"
        )
    if (
        r["ntasks_per_node"]
        and r["ntasks"]
        and r["nodes"]
        and r["ntasks_per_node"] * r["nodes"] < r["ntasks"]
    ):
        raise JobSpecError(
            f"resources.ntasks = {r['ntasks']} does not fit {r['nodes']} nodes x {r['ntasks_per_node']} tasks per node",
            "raise nodes or ntasks_per_node, or lower ntasks",
        )
    return Resources(exclusive=exclusive, **r)


def parse_gpu(value: Any, resources: Resources) -> GpuSpec:
    if value is None:
        return GpuSpec()
    if not isinstance(value, dict):
        raise JobSpecError(
            f"gpu = {value!r} is not a table", 'write [gpu] vendor = "nvidia", count = 1'
        )
    check_keys(value, SCHEMA["gpu"], "gpu.")
    vendor = (
        None if value.get("vendor") is None else choice(value["vendor"], "gpu.vendor", GPU_VENDORS)
    )
    other = resources.gpus or resources.gpus_per_node or gres_gpu_count(resources.gres)
    if value.get("count") is not None:
        count = pos_int(value["count"], "gpu.count")
        if other and other != count:
            raise JobSpecError(
                f"gpu.count = {count} disagrees with the GPUs in [resources] ({other})",
                "keep one of them",
            )
    else:
        count = 0 if other else 1
    return GpuSpec(vendor, count)


def parse_mpi(value: Any) -> MpiSpec:
    if value is None:
        return MpiSpec()
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise JobSpecError(f"mpi = {value!r} is not a table", 'write [mpi] type = "srun"')
    check_keys(value, SCHEMA["mpi"], "mpi.")
    mtype = choice(value.get("type", "none"), "mpi.type", MPI_TYPES)
    pmi = None if value.get("pmi") is None else as_line(value["pmi"], "mpi.pmi")
    if pmi is not None and not PMI_NAME.fullmatch(pmi):
        raise JobSpecError(
            f"mpi.pmi = {pmi!r} is not an srun MPI plugin name",
            "write a name `srun --mpi=list` shows: pmix, pmix_v4, pmi2, cray_shasta, none...",
        )
    model = choice(value.get("model", "hybrid"), "mpi.model", MPI_MODELS)
    flavor = choice(value.get("flavor", "unknown"), "mpi.flavor", MPI_FLAVORS)
    host_dir = opt_str(value, "host_mpi_dir", "mpi.host_mpi_dir")
    srun_options = tuple(
        as_line(o, f"mpi.srun_options[{i}]")
        for i, o in enumerate(as_list(value.get("srun_options", []), "mpi.srun_options"))
    )
    for i, option in enumerate(srun_options):
        parse_srun_option(option, f"mpi.srun_options[{i}]")
    for key, given in (("pmi", pmi), ("srun_options", srun_options)):
        if given and mtype != "srun":
            raise JobSpecError(
                f'mpi.{key} = {given!r} applies only to type = "srun"',
                f'set mpi.type = "srun" or remove {key} (type is {mtype!r})',
            )
    if mtype == "none" and (model != "hybrid" or host_dir):
        raise JobSpecError(
            'mpi settings given but mpi.type is "none"', 'set mpi.type = "srun" or "mpirun"'
        )
    if model == "bind" and not host_dir:
        raise JobSpecError(
            'mpi.model = "bind" needs mpi.host_mpi_dir',
            "set it to the host MPI installation, e.g. /opt/openmpi",
        )
    if host_dir is not None:
        if model != "bind":
            raise JobSpecError(
                'mpi.host_mpi_dir is set but mpi.model is "hybrid"',
                'set mpi.model = "bind" or remove host_mpi_dir',
            )
        if not host_dir.startswith("/"):
            raise JobSpecError(
                f"mpi.host_mpi_dir = {host_dir!r} is not absolute", "give the absolute host path"
            )
    problem = bad_pairing(flavor, pmi)
    if problem:
        raise JobSpecError(f"mpi.flavor = {flavor!r} with mpi.pmi = {pmi!r} does not work", problem)
    norm_dir = posixpath.normpath(host_dir) if host_dir else None
    return MpiSpec(mtype, pmi, model, norm_dir, flavor, srun_options)


def parse_module(value: Any, i: int) -> str:
    name = as_line(value, f"modules[{i}]")
    if any(c.isspace() for c in name):
        raise JobSpecError(
            f"modules[{i}] = {name!r} contains whitespace", "list one module per entry"
        )
    return name


def parse_sbatch(value: Any, i: int) -> str:
    key = f"extra_sbatch[{i}]"
    text = as_line(value, key).strip()
    if not text.startswith("--") or len(text) < 3:
        raise JobSpecError(
            f"{key} = {text!r} does not start with --",
            'write the long option, e.g. "--mail-type=END"',
        )
    option = text[2:].split("=", 1)[0].split()[0]
    if option in _SBATCH_FIELDS:
        raise JobSpecError(
            f"{key} = {text!r} sets --{option}", f"use {_SBATCH_FIELDS[option]} instead"
        )
    return text


def parse_deps(value: Any) -> tuple[Dependency, ...]:
    out: list[Dependency] = []
    for i, item in enumerate(as_list(value, "dependencies")):
        key = f"dependencies[{i}]"
        if isinstance(item, dict):
            check_keys(item, {"type": 0, "id": 0, "ids": 0}, f"{key}.")
            dtype = item.get("type", "afterok")
            ids_val = item.get("ids", item.get("id", []))
            ids = [ids_val] if isinstance(ids_val, (str, int)) else ids_val
        elif isinstance(item, (str, int)) and not isinstance(item, bool):
            text = str(item).strip()
            dtype, sep, rest = text.partition(":")
            if not sep:
                dtype, rest = ("singleton", "") if text == "singleton" else ("afterok", text)
            ids = [p for p in rest.split(":") if p]
        else:
            raise JobSpecError(
                f"{key} = {item!r} is not a dependency",
                'e.g. "afterok:12345" or {type = "afterany", id = "ID"}',
            )
        dtype = choice(dtype, f"{key}.type", DEPENDENCY_TYPES)
        if not isinstance(ids, list):
            raise JobSpecError(f"{key}.ids = {ids!r} is not a list", 'e.g. ids = ["12345"]')
        clean = tuple(str(x) for x in ids)
        for job_id in clean:
            if isinstance(job_id, bool) or not _ID.fullmatch(job_id):
                raise JobSpecError(
                    f"{key}: {job_id!r} is not a job or submission id",
                    "use a Slurm job id or an hpcbridge id from `hpcbridge list`",
                )
        if dtype == "singleton" and clean:
            raise JobSpecError(f"{key}: singleton takes no ids", 'write "singleton"')
        if dtype != "singleton" and not clean:
            raise JobSpecError(f"{key}: {dtype} needs at least one id", f'write "{dtype}:JOBID"')
        out.append(Dependency(dtype, clean))
    return tuple(out)
