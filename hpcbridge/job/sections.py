"""Builders of the job-file sections: binds, env, resources, GPU, MPI, dependencies (pure)."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from hpcbridge.errors import JobSpecError
from hpcbridge.job.fields import as_line, as_list, choice, opt_str, pos_int, template
from hpcbridge.job.schema import SCHEMA, check_keys
from hpcbridge.job.spec import (
    BAD_PAIRINGS,
    DEPENDENCY_TYPES,
    GPU_VENDORS,
    MPI_FLAVORS,
    MPI_MODELS,
    MPI_TYPES,
    PMI_TYPES,
    Bind,
    Dependency,
    GpuSpec,
    MpiSpec,
    Resources,
    gres_gpu_count,
)
from hpcbridge.job.values import ENV_NAME
from hpcbridge.slurm_syntax import parse_mem, parse_time

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_GRES = re.compile(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)*")
# environment names the runtime refuses or overwrites, and hpcbridge's own
_ENV_REFUSED = {
    "HOME": "Apptainer refuses to set HOME in the container; remove it",
    "UID": "Apptainer ignores UID in the container environment",
    "GID": "Apptainer ignores GID in the container environment",
}
_ENV_REFUSED_PREFIXES = (
    "APPTAINER_",
    "SINGULARITY_",
    "APPTAINERENV_",
    "SINGULARITYENV_",
    "HPCBRIDGE_",
)
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


def container_path(path: str, key: str) -> None:
    if not path.startswith("/"):
        raise JobSpecError(
            f"{key} = {path!r} is not an absolute container path", f"write /{path.lstrip('./')}"
        )


def _bind_from_str(text: str, key: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) > 3:
        raise JobSpecError(
            f"{key} = {text!r} has more than src:dst:mode",
            'use a table: {src = "...", dst = "...", mode = "ro"}',
        )
    if len(parts) == 3:
        return {"src": parts[0], "dst": parts[1], "mode": parts[2]}
    if len(parts) == 2 and parts[1] in ("ro", "rw"):
        return {"src": parts[0], "dst": parts[0], "mode": parts[1]}
    return {"src": parts[0], "dst": parts[1] if len(parts) == 2 else parts[0]}


def parse_binds(value: Any, job_dir: str, allowed: Sequence[str] = ()) -> tuple[Bind, ...]:
    """Parse a binds list (short strings or tables); relative sources resolve under job_dir."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        raise JobSpecError(f"binds = {value!r} is not a list", 'e.g. binds = ["data:/data:ro"]')
    out: list[Bind] = []
    for i, item in enumerate(items):
        key = f"binds[{i}]"
        if isinstance(item, str):
            table = _bind_from_str(as_line(item, key), key)
        elif isinstance(item, dict):
            check_keys(item, {"src": 0, "dst": 0, "mode": 0}, f"{key}.")
            table = item
        else:
            raise JobSpecError(
                f'{key} = {item!r} is neither "src:dst[:mode]" nor a table',
                'e.g. {src = "data", dst = "/data"}',
            )
        if "src" not in table:
            raise JobSpecError(f"{key} has no src", "add src = HOST_PATH")
        src = as_line(table["src"], f"{key}.src")
        dst = as_line(table.get("dst", src), f"{key}.dst")
        mode = choice(table.get("mode", "rw"), f"{key}.mode", ("ro", "rw"))
        container_path(dst, f"{key}.dst")
        if ":" in dst or "," in dst:
            raise JobSpecError(
                f"{key}.dst = {dst!r} contains ':' or ','",
                "Apptainer cannot bind to such a path; choose another",
            )
        fields = template(src, f"{key}.src", allowed) + template(dst, f"{key}.dst", allowed)
        host = src if os.path.isabs(src) or src.startswith("{input") else os.path.join(job_dir, src)
        out.append(
            Bind(os.path.normpath(host), posixpath.normpath(dst), mode, per_task=bool(fields))
        )
    seen: dict[str, int] = {}
    for i, b in enumerate(out):
        if b.dst in seen:
            raise JobSpecError(
                f"binds[{i}].dst = {b.dst!r} is already bound by binds[{seen[b.dst]}]",
                "give each bind its own destination",
            )
        seen[b.dst] = i
    return tuple(out)


def parse_env(value: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobSpecError(f"env = {value!r} is not a table", 'e.g. [env] OMP_NUM_THREADS = "4"')
    out: dict[str, str] = {}
    for name, val in value.items():
        if not ENV_NAME.fullmatch(name):
            raise JobSpecError(
                f"env name {name!r} is not a valid variable name",
                "use letters, digits and _, not starting with a digit",
            )
        if name in _ENV_REFUSED:
            raise JobSpecError(f"env name {name!r} cannot be set", _ENV_REFUSED[name])
        for prefix in _ENV_REFUSED_PREFIXES:
            if name.startswith(prefix):
                raise JobSpecError(
                    f"env name {name!r} cannot be set",
                    f"names starting with {prefix} are reserved for the runtime/hpcbridge",
                )
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise JobSpecError(
                f"env.{name} = {val!r} is not a string", f'quote it: {name} = "{val}"'
            )
        text = val if isinstance(val, str) else str(val)
        if "\x00" in text:
            raise JobSpecError(f"env.{name} contains a NUL byte", "remove it")
        template(text, f"env.{name}", allowed)
        out[name] = text
    return out


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
    pmi = None if value.get("pmi") is None else choice(value["pmi"], "mpi.pmi", PMI_TYPES)
    model = choice(value.get("model", "hybrid"), "mpi.model", MPI_MODELS)
    flavor = choice(value.get("flavor", "unknown"), "mpi.flavor", MPI_FLAVORS)
    host_dir = opt_str(value, "host_mpi_dir", "mpi.host_mpi_dir")
    if pmi is not None and mtype != "srun":
        raise JobSpecError(
            f'mpi.pmi = {pmi!r} applies only to type = "srun"',
            f'set mpi.type = "srun" or remove pmi (type is {mtype!r})',
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
    if pmi is not None and (flavor, pmi) in BAD_PAIRINGS:
        raise JobSpecError(
            f"mpi.flavor = {flavor!r} with mpi.pmi = {pmi!r} does not work",
            BAD_PAIRINGS[(flavor, pmi)],
        )
    return MpiSpec(mtype, pmi, model, posixpath.normpath(host_dir) if host_dir else None, flavor)


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
