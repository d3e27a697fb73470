"""Turn a parsed job mapping into a validated :class:`~hpcbridge.model.JobSpec`.

Pure: file access for inputs is a callback (``list_inputs``) handed in by
:func:`hpcbridge.model.load_job`.  The schema table :data:`SCHEMA` drives
unknown-key detection and the typing of ``--set key=value`` values.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

from hpcbridge import _toml as tomllib
from hpcbridge.errors import JobSpecError
from hpcbridge.model import (
    BAD_PAIRINGS,
    DEPENDENCY_TYPES,
    GPU_VENDORS,
    MAX_NAME_LEN,
    MPI_FLAVORS,
    MPI_MODELS,
    MPI_TYPES,
    PMI_TYPES,
    Bind,
    Dependency,
    GpuSpec,
    JobSpec,
    MpiSpec,
    Resources,
    gres_gpu_count,
)
from hpcbridge.model_values import (
    INPUT_FIELDS,
    PLACEHOLDERS,
    ArraySpec,
    Field,
    parse_array,
    parse_mem,
    parse_signal,
    parse_template,
    parse_time,
    unknown_hint,
)

ListInputs = Callable[[str, str, str], "tuple[str, list[str]]"]
Schema = Mapping[str, Union[str, "Schema"]]

# kind of each key: str, int, bool, time, mem, array, argv, list, lines, binds, env,
# deps, inputs, or a nested table.
SCHEMA: dict[str, Any] = {
    "name": "str",
    "image": "str",
    "command": "argv",
    "script": "str",
    "workdir": "str",
    "resources": {
        "partition": "str",
        "account": "str",
        "qos": "str",
        "time": "time",
        "nodes": "int",
        "ntasks": "int",
        "ntasks_per_node": "int",
        "cpus_per_task": "int",
        "mem": "mem",
        "mem_per_cpu": "mem",
        "gpus": "int",
        "gpus_per_node": "int",
        "gres": "str",
        "constraint": "str",
        "exclusive": "bool",
    },
    "array": "array",
    "inputs": "inputs",
    "inputs_file": "str",
    "binds": "binds",
    "env": "env",
    "mpi": {"type": "str", "pmi": "str", "model": "str", "host_mpi_dir": "str", "flavor": "str"},
    "gpu": {"vendor": "str", "count": "int"},
    "modules": "list",
    "pre": "lines",
    "post": "lines",
    "extra_sbatch": "list",
    "dependencies": "deps",
    "signal": "str",
    "requeue": "bool",
    "output": "str",
    "error": "str",
}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
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


# ----------------------------------------------------------------------- --set


def apply_sets(data: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys, typed by :data:`SCHEMA`)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise JobSpecError(
                f"--set {item!r} is not key=value", "e.g. --set resources.time=01:00:00"
            )
        parts = key.split(".")
        schema: Any = SCHEMA
        target = out
        for i, part in enumerate(parts):
            dotted = ".".join(parts[: i + 1])
            if schema == "env" and i == len(parts) - 1:
                target[part] = raw
                break
            if not isinstance(schema, dict) or part not in schema:
                choices = schema.keys() if isinstance(schema, dict) else ()
                raise JobSpecError(
                    f"--set {item!r}: unknown key {dotted!r}", unknown_hint(part, choices)
                )
            sub = schema[part]
            if i == len(parts) - 1:
                if isinstance(sub, dict):
                    raise JobSpecError(
                        f"--set {item!r}: {dotted!r} is a table",
                        f"set one of {dotted}.<key>: {', '.join(sub)}",
                    )
                target[part] = _typed(sub, raw, dotted)
                break
            if isinstance(sub, dict) or sub == "env":
                nxt = target.get(part)
                if isinstance(nxt, str) and part == "mpi":
                    nxt = {"type": nxt}
                target[part] = dict(nxt) if isinstance(nxt, dict) else {}
                target = target[part]
                schema = sub
            else:
                raise JobSpecError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])!r} is not a table",
                    f"write --set {dotted}=VALUE",
                )
    return out


def _typed(kind: str, raw: str, key: str) -> Any:
    text = raw.strip()
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise JobSpecError(
                f"--set {key}={raw!r} is not a whole number", f"e.g. --set {key}=2"
            ) from None
    if kind == "bool":
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise JobSpecError(f"--set {key}={raw!r} is not true/false", f"write --set {key}=true")
    if kind in ("argv", "list", "lines", "binds", "deps", "inputs") and text.startswith("["):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise JobSpecError(
                f"--set {key}={raw!r} is not a TOML array: {exc}", 'e.g. ["a", "b"]'
            ) from None
    if kind == "argv":
        try:
            return shlex.split(raw)
        except ValueError as exc:
            raise JobSpecError(f"--set {key}={raw!r}: {exc}", "balance the quotes") from None
    if kind in ("list", "deps"):
        return [p.strip() for p in text.split(",") if p.strip()]
    if kind == "binds":
        return [text]
    return raw


# ----------------------------------------------------------------------- build


def _check_keys(table: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    for key in table:
        if key not in schema:
            dotted = f"{prefix}{key}"
            raise JobSpecError(f"unknown key {dotted!r}", unknown_hint(key, schema))


def _str(value: Any, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise JobSpecError(f"{key} = {value!r} is not a string", f'quote it: {key} = "{value}"')
    if not allow_empty and not value.strip():
        raise JobSpecError(f"{key} is empty", f"give {key} a value or remove it")
    if "\x00" in value:
        raise JobSpecError(f"{key} = {value!r} contains a NUL byte", "remove it")
    return value


def _line(value: Any, key: str) -> str:
    text = _str(value, key)
    if "\n" in text or "\r" in text:
        raise JobSpecError(f"{key} = {text!r} contains a newline", "write it on one line")
    return text


def _opt_str(table: Mapping[str, Any], key: str, dotted: str) -> Optional[str]:
    return None if table.get(key) is None else _line(table[key], dotted)


def _pos_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobSpecError(f"{key} = {value!r} is not a positive whole number", f"e.g. {key} = 1")
    return value


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise JobSpecError(
            f"{key} = {value!r} is not valid", unknown_hint(str(value), choices, "choose one of")
        )
    return value


def _template(text: str, key: str, allowed: Sequence[str]) -> tuple[Field, ...]:
    return tuple(p for p in parse_template(text, key, allowed) if isinstance(p, Field))


def build_job(
    data: Mapping[str, Any], *, job_dir: str, source: Optional[str], list_inputs: ListInputs
) -> JobSpec:
    """Validate ``data`` (a parsed job file) into a :class:`JobSpec`."""
    _check_keys(data, SCHEMA, "")
    if "image" not in data:
        raise JobSpecError("the job has no image", 'add image = "docker://..." or a .sif path')
    image = _image(_line(data["image"], "image"), job_dir)
    command, script = _command(data)
    inputs = _inputs(data, job_dir, list_inputs)
    allowed = PLACEHOLDERS if inputs else tuple(p for p in PLACEHOLDERS if p not in INPUT_FIELDS)
    if command is not None:
        for i, arg in enumerate(command):
            _template(arg, f"command[{i}]", allowed)
    array = _array(data.get("array"), inputs)
    binds = parse_binds(data.get("binds", []), job_dir, allowed)
    env = _env(data.get("env", {}), allowed)
    resources = _resources(data.get("resources", {}))
    gpu = _gpu(data.get("gpu"), resources)
    workdir = _opt_str(data, "workdir", "workdir")
    if workdir is not None:
        _container_path(workdir, "workdir")
        _template(workdir, "workdir", ())
    output = _opt_str(data, "output", "output")
    error = _opt_str(data, "error", "error")
    for key, val in (("output", output), ("error", error)):
        if val is not None:
            _template(val, key, ())
    requeue = data.get("requeue")
    if requeue is not None and not isinstance(requeue, bool):
        raise JobSpecError(f"requeue = {requeue!r} is not true/false", "write requeue = true")
    return JobSpec(
        name=_name(data.get("name"), source),
        image=image,
        command=command,
        script=script,
        workdir=posixpath.normpath(workdir) if workdir else None,
        resources=resources,
        array=array,
        inputs=inputs,
        binds=binds,
        env=env,
        mpi=_mpi(data.get("mpi")),
        gpu=gpu,
        modules=tuple(
            _module(m, i) for i, m in enumerate(_list(data.get("modules", []), "modules"))
        ),
        pre=_lines(data.get("pre", []), "pre"),
        post=_lines(data.get("post", []), "post"),
        extra_sbatch=tuple(
            _sbatch(x, i) for i, x in enumerate(_list(data.get("extra_sbatch", []), "extra_sbatch"))
        ),
        dependencies=_deps(data.get("dependencies", [])),
        signal=None if data.get("signal") is None else parse_signal(data["signal"]),
        requeue=requeue,
        output=output,
        error=error,
        job_dir=job_dir,
        source=source,
    )


def _name(value: Any, source: Optional[str]) -> str:
    fix = f"use letters, digits and . _ + -, start with a letter or digit, at most {MAX_NAME_LEN} characters"
    if value is None:
        stem = os.path.splitext(os.path.basename(source or "job"))[0]
        clean = re.sub(r"[^A-Za-z0-9._+-]", "_", stem).lstrip("._+-")[:MAX_NAME_LEN]
        return clean or "job"
    if not isinstance(value, str):
        raise JobSpecError(f"name = {value!r} is not a string", f'quote it: name = "{value}"')
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise JobSpecError(f"name = {value!r} contains a newline or control character", fix)
    if len(value) > MAX_NAME_LEN:
        raise JobSpecError(f"name = {value[:20]!r}... is {len(value)} characters long", fix)
    if not _NAME.fullmatch(value):
        raise JobSpecError(
            f"name = {value!r} has characters Slurm log names cannot carry safely", fix
        )
    return value


def _image(image: str, job_dir: str) -> str:
    if any(c.isspace() for c in image):
        raise JobSpecError(f"image = {image!r} contains whitespace", "remove the spaces")
    for scheme in ("docker-archive:", "oci-archive:", "oci:"):
        if image.startswith(scheme):
            rest = image[len(scheme) :]
            if not rest:
                raise JobSpecError(f"image = {image!r} names no path", f"write {scheme}PATH")
            return image if rest.startswith("/") else f"{scheme}{os.path.join(job_dir, rest)}"
    if image.endswith(".sif") and "://" not in image:
        return os.path.normpath(os.path.join(job_dir, image))
    return image


def _command(data: Mapping[str, Any]) -> tuple[Optional[tuple[str, ...]], Optional[str]]:
    has_cmd, has_script = data.get("command") is not None, data.get("script") is not None
    if has_cmd and has_script:
        raise JobSpecError("the job has both command and script", "keep exactly one of them")
    if not has_cmd and not has_script:
        raise JobSpecError(
            "the job has neither command nor script",
            'add command = ["prog", "arg"] or script = "..."',
        )
    if has_script:
        return None, _str(data["script"], "script")
    cmd = data["command"]
    if isinstance(cmd, str):
        raise JobSpecError(
            f"command = {cmd!r} is a string, not an argv list",
            f"write command = {shlex.split(cmd) if _splits(cmd) else [cmd]!r} or use script = ...".replace(
                "'", '"'
            ),
        )
    if not isinstance(cmd, list) or not cmd:
        raise JobSpecError(
            f"command = {cmd!r} is not a non-empty list of strings",
            'e.g. command = ["python3", "run.py"]',
        )
    return tuple(_str(a, f"command[{i}]", allow_empty=i > 0) for i, a in enumerate(cmd)), None


def _splits(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def _inputs(data: Mapping[str, Any], job_dir: str, list_inputs: ListInputs) -> tuple[str, ...]:
    spec, list_file = data.get("inputs"), data.get("inputs_file")
    if spec is not None and list_file is not None:
        raise JobSpecError("the job has both inputs and inputs_file", "keep one of them")
    if spec is None and list_file is None:
        return ()
    if isinstance(spec, list):
        base, entries = job_dir, [_line(e, f"inputs[{i}]") for i, e in enumerate(spec)]
        what = "inputs"
    elif spec is not None:
        pattern = _line(spec, "inputs")
        base, entries = list_inputs("glob", pattern, job_dir)
        what = f"inputs = {pattern!r}"
        if not entries:
            raise JobSpecError(
                f"{what} matches no files under {job_dir}",
                "check the pattern; it is relative to the job file",
            )
    else:
        name = _line(list_file, "inputs_file")
        base, entries = list_inputs("file", name, job_dir)
        what = f"inputs_file = {name!r}"
    if not entries:
        raise JobSpecError(f"{what} lists no paths", "add one path per line")
    out = []
    for entry in entries:
        if "\n" in entry or "\r" in entry:
            raise JobSpecError(
                f"{what}: input path {entry!r} contains a newline", "rename the file"
            )
        out.append(os.path.normpath(os.path.join(base, entry)))
    return tuple(out)


def _array(value: Any, inputs: tuple[str, ...]) -> Optional[ArraySpec]:
    if value is None:
        return ArraySpec(tuple(range(len(inputs)))) if inputs else None
    throttle_only = isinstance(value, str) and value.strip().startswith("%")
    if throttle_only:
        if not inputs:
            raise JobSpecError(
                f"array = {value!r} has only a throttle", 'give indices, e.g. "0-99%10"'
            )
        spec = parse_array(f"0-{len(inputs) - 1}{value.strip()}")
    else:
        spec = parse_array(value)
    if inputs and spec.indices[-1] >= len(inputs):
        raise JobSpecError(
            f"array = {value!r} goes up to task {spec.indices[-1]} but there are {len(inputs)} inputs",
            f"use indices 0-{len(inputs) - 1}, or leave array out: it follows the inputs",
        )
    return spec


def _container_path(path: str, key: str) -> None:
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
            table = _bind_from_str(_line(item, key), key)
        elif isinstance(item, dict):
            _check_keys(item, {"src": 0, "dst": 0, "mode": 0}, f"{key}.")
            table = item
        else:
            raise JobSpecError(
                f'{key} = {item!r} is neither "src:dst[:mode]" nor a table',
                'e.g. {src = "data", dst = "/data"}',
            )
        if "src" not in table:
            raise JobSpecError(f"{key} has no src", "add src = HOST_PATH")
        src = _line(table["src"], f"{key}.src")
        dst = _line(table.get("dst", src), f"{key}.dst")
        mode = _choice(table.get("mode", "rw"), f"{key}.mode", ("ro", "rw"))
        _container_path(dst, f"{key}.dst")
        if ":" in dst or "," in dst:
            raise JobSpecError(
                f"{key}.dst = {dst!r} contains ':' or ','",
                "Apptainer cannot bind to such a path; choose another",
            )
        fields = _template(src, f"{key}.src", allowed) + _template(dst, f"{key}.dst", allowed)
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


def _env(value: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobSpecError(f"env = {value!r} is not a table", 'e.g. [env] OMP_NUM_THREADS = "4"')
    out: dict[str, str] = {}
    for name, val in value.items():
        if not _ENV_NAME.fullmatch(name):
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
        _template(text, f"env.{name}", allowed)
        out[name] = text
    return out


def _resources(value: Any) -> Resources:
    if not isinstance(value, dict):
        raise JobSpecError(
            f"resources = {value!r} is not a table", "write [resources] with keys below it"
        )
    _check_keys(value, SCHEMA["resources"], "resources.")
    r: dict[str, Any] = {}
    for key in ("partition", "account", "qos", "constraint"):
        r[key] = _opt_str(value, key, f"resources.{key}")
    for key in ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "gpus", "gpus_per_node"):
        r[key] = None if value.get(key) is None else _pos_int(value[key], f"resources.{key}")
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
    gres = _opt_str(value, "gres", "resources.gres")
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


def _gpu(value: Any, resources: Resources) -> GpuSpec:
    if value is None:
        return GpuSpec()
    if not isinstance(value, dict):
        raise JobSpecError(
            f"gpu = {value!r} is not a table", 'write [gpu] vendor = "nvidia", count = 1'
        )
    _check_keys(value, SCHEMA["gpu"], "gpu.")
    vendor = (
        None if value.get("vendor") is None else _choice(value["vendor"], "gpu.vendor", GPU_VENDORS)
    )
    other = resources.gpus or resources.gpus_per_node or gres_gpu_count(resources.gres)
    if value.get("count") is not None:
        count = _pos_int(value["count"], "gpu.count")
        if other and other != count:
            raise JobSpecError(
                f"gpu.count = {count} disagrees with the GPUs in [resources] ({other})",
                "keep one of them",
            )
    else:
        count = 0 if other else 1
    return GpuSpec(vendor, count)


def _mpi(value: Any) -> MpiSpec:
    if value is None:
        return MpiSpec()
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise JobSpecError(f"mpi = {value!r} is not a table", 'write [mpi] type = "srun"')
    _check_keys(value, SCHEMA["mpi"], "mpi.")
    mtype = _choice(value.get("type", "none"), "mpi.type", MPI_TYPES)
    pmi = None if value.get("pmi") is None else _choice(value["pmi"], "mpi.pmi", PMI_TYPES)
    model = _choice(value.get("model", "hybrid"), "mpi.model", MPI_MODELS)
    flavor = _choice(value.get("flavor", "unknown"), "mpi.flavor", MPI_FLAVORS)
    host_dir = _opt_str(value, "host_mpi_dir", "mpi.host_mpi_dir")
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


def _list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise JobSpecError(f"{key} = {value!r} is not a list", f'e.g. {key} = ["..."]')
    return value


def _lines(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(ln for ln in _str(value, key).splitlines() if ln.strip())
    return tuple(_line(v, f"{key}[{i}]") for i, v in enumerate(_list(value, key)))


def _module(value: Any, i: int) -> str:
    name = _line(value, f"modules[{i}]")
    if any(c.isspace() for c in name):
        raise JobSpecError(
            f"modules[{i}] = {name!r} contains whitespace", "list one module per entry"
        )
    return name


def _sbatch(value: Any, i: int) -> str:
    key = f"extra_sbatch[{i}]"
    text = _line(value, key).strip()
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


def _deps(value: Any) -> tuple[Dependency, ...]:
    out: list[Dependency] = []
    for i, item in enumerate(_list(value, "dependencies")):
        key = f"dependencies[{i}]"
        if isinstance(item, dict):
            _check_keys(item, {"type": 0, "id": 0, "ids": 0}, f"{key}.")
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
        dtype = _choice(dtype, f"{key}.type", DEPENDENCY_TYPES)
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
