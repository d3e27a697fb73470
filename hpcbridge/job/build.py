"""Turn a parsed job mapping into a validated :class:`~hpcbridge.job.spec.JobSpec`.

Pure: file access for inputs is a callback (:data:`ListInputs`) handed in by
:mod:`hpcbridge.job.load`.  Unknown keys are refused by the key table
(:data:`hpcbridge.job.schema.SCHEMA`); the sections (binds, env, resources...)
are built by :mod:`hpcbridge.job.sections`.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any, Callable, Optional

from hpcbridge.errors import JobSpecError
from hpcbridge.images.refs import is_local_image_path
from hpcbridge.job.environment import parse_env, parse_env_command, parse_host_env
from hpcbridge.job.fields import as_line, as_lines, as_list, as_str, opt_str, template
from hpcbridge.job.flags import parse_apptainer_env, parse_flags
from hpcbridge.job.mounts import container_path, parse_binds, parse_overlays
from hpcbridge.job.schema import SCHEMA, check_keys
from hpcbridge.job.sections import (
    parse_deps,
    parse_gpu,
    parse_module,
    parse_mpi,
    parse_resources,
    parse_sbatch,
)
from hpcbridge.job.spec import MAX_NAME_LEN, JobSpec
from hpcbridge.job.values import INPUT_FIELDS, PLACEHOLDERS, parse_signal
from hpcbridge.slurm_syntax import ArraySpec, parse_array

#: File access for inputs: (kind "glob" | "file", value, job_dir) ->
#: (base directory of relative entries, entries).
ListInputs = Callable[[str, str, str], "tuple[str, list[str]]"]
#: File access for a local image: does this absolute path name an existing file?
IsFile = Callable[[str], bool]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_APP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# ----------------------------------------------------------------------- build


def build_job(
    data: Mapping[str, Any],
    *,
    job_dir: str,
    source: Optional[str],
    list_inputs: ListInputs,
    is_file: IsFile = lambda _path: False,
) -> JobSpec:
    """Validate ``data`` (a parsed job file) into a :class:`JobSpec`."""
    check_keys(data, SCHEMA, "")
    for section, sub in SCHEMA.items():  # keys of tables first: misplaced top-level keys
        if isinstance(sub, dict) and isinstance(data.get(section), dict):
            check_keys(data[section], sub, f"{section}.")
    if "image" not in data:
        raise JobSpecError("the job has no image", 'add image = "docker://..." or an image file')
    image = _image(as_line(data["image"], "image"), job_dir, is_file)
    command, script, run = _command(data)
    inputs = _inputs(data, job_dir, list_inputs)
    allowed = PLACEHOLDERS if inputs else tuple(p for p in PLACEHOLDERS if p not in INPUT_FIELDS)
    for key, argv in (("command", command), ("run", run)):
        for i, arg in enumerate(argv or ()):
            template(arg, f"{key}[{i}]", allowed)
    resources = parse_resources(data.get("resources", {}))
    pwd, pwd_key = _pwd(data)
    for key in ("output", "error"):
        if data.get(key) is not None:
            template(as_line(data[key], key), key, ())
    requeue = data.get("requeue")
    if requeue is not None and not isinstance(requeue, bool):
        raise JobSpecError(f"requeue = {requeue!r} is not true/false", "write requeue = true")
    return JobSpec(
        name=_name(data.get("name"), source),
        image=image,
        command=command,
        script=script,
        run=run,
        app=_app(data.get("app")),
        pwd=pwd,
        pwd_key=pwd_key,
        resources=resources,
        array=_array(data.get("array"), inputs),
        inputs=inputs,
        mpi=parse_mpi(data.get("mpi")),
        gpu=parse_gpu(data.get("gpu"), resources),
        modules=tuple(
            parse_module(m, i) for i, m in enumerate(as_list(data.get("modules", []), "modules"))
        ),
        pre=as_lines(data.get("pre", []), "pre"),
        post=as_lines(data.get("post", []), "post"),
        extra_sbatch=tuple(
            parse_sbatch(x, i)
            for i, x in enumerate(as_list(data.get("extra_sbatch", []), "extra_sbatch"))
        ),
        dependencies=parse_deps(data.get("dependencies", [])),
        signal=None if data.get("signal") is None else parse_signal(data["signal"]),
        requeue=requeue,
        output=opt_str(data, "output", "output"),
        error=opt_str(data, "error", "error"),
        job_dir=job_dir,
        source=source,
        **_container_keys(data, job_dir, allowed),
    )


def _container_keys(
    data: Mapping[str, Any], job_dir: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    """binds, overlays, the environment keys and the runtime flags."""
    env = parse_env(data.get("env", {}), allowed)
    runtime_env, container_env = parse_apptainer_env(data.get("apptainer_env", {}))
    for name, value in parse_env(container_env, allowed).items():
        if name in env:
            raise JobSpecError(
                f"apptainer_env.APPTAINERENV_{name}: {name} is also set in [env]",
                "keep one of them (both set the container variable)",
            )
        env[name] = value
    flags = parse_flags(data.get("apptainer", {}), allowed)
    overlays = parse_overlays(data.get("overlays", []), job_dir, allowed)
    if any(f.name == "writable-tmpfs" for f in flags) and any(not o.read_only for o in overlays):
        raise JobSpecError(
            "apptainer.writable-tmpfs is set and an overlay is writable",
            "Apptainer takes one writable layer: drop writable-tmpfs or add :ro to the overlay",
        )
    host_env = parse_host_env(data.get("host_env", []))
    for name in host_env:
        if name in env:
            raise JobSpecError(f"host_env names {name!r}, which [env] sets too", "keep one of them")
    return {
        "binds": parse_binds(data.get("binds", []), job_dir, allowed, env_refs=True),
        "overlays": overlays,
        "env": env,
        "host_env": host_env,
        "env_command": parse_env_command(data.get("env_command", {}), env),
        "apptainer": flags,
        "apptainer_env": runtime_env,
    }


def _pwd(data: Mapping[str, Any]) -> tuple[Optional[str], str]:
    """``pwd`` (--pwd), or ``workdir``, its old name (kept working; not Apptainer's --workdir,
    which is ``[apptainer] workdir``)."""
    if data.get("pwd") is not None and data.get("workdir") is not None:
        raise JobSpecError(
            "the job has both pwd and workdir",
            "workdir is the old name of pwd (--pwd): keep pwd; Apptainer's --workdir is "
            "[apptainer] workdir",
        )
    key = "workdir" if data.get("workdir") is not None else "pwd"
    value = opt_str(data, key, key)
    if value is None:
        return None, "pwd"
    container_path(value, key)
    template(value, key, ())
    return posixpath.normpath(value), key


def _app(value: Any) -> Optional[str]:
    if value is None:
        return None
    name = as_line(value, "app")
    if not _APP.fullmatch(name):
        raise JobSpecError(
            f"app = {name!r} is not an app name", "use the name of a %app section of the image"
        )
    return name


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


def _image(image: str, job_dir: str, is_file: IsFile) -> str:
    """The image reference; a local image file (by its form, or because such a file
    exists next to the job file) becomes an absolute path, never a Docker Hub name."""
    if any(c.isspace() for c in image):
        raise JobSpecError(f"image = {image!r} contains whitespace", "remove the spaces")
    for scheme in ("docker-archive:", "oci-archive:", "oci:"):
        if image.startswith(scheme):
            rest = image[len(scheme) :]
            if not rest:
                raise JobSpecError(f"image = {image!r} names no path", f"write {scheme}PATH")
            return image if rest.startswith("/") else f"{scheme}{os.path.join(job_dir, rest)}"
    if "://" in image:
        return image
    path = os.path.join(job_dir, os.path.expanduser(image))
    if is_local_image_path(image) or is_file(path):
        return os.path.normpath(path)
    return image


def _command(
    data: Mapping[str, Any],
) -> tuple[Optional[tuple[str, ...]], Optional[str], Optional[tuple[str, ...]]]:
    """(command, script, run): exactly one of them."""
    given = [k for k in ("command", "script", "run") if data.get(k) is not None]
    if len(given) > 1:
        raise JobSpecError(
            f"the job has both {given[0]} and {given[1]}", "keep exactly one of them"
        )
    if not given:
        raise JobSpecError(
            "the job has neither command nor script",
            'add command = ["prog", "arg"], script = "..." or run = [] (the image\'s runscript)',
        )
    if given == ["script"]:
        return None, as_str(data["script"], "script"), None
    if given == ["run"]:
        args = data["run"]
        if not isinstance(args, list):
            raise JobSpecError(
                f"run = {args!r} is not a list of arguments",
                'e.g. run = ["--input", "data.csv"], or run = [] for none',
            )
        return (
            None,
            None,
            tuple(as_str(a, f"run[{i}]", allow_empty=True) for i, a in enumerate(args)),
        )
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
    argv = tuple(as_str(a, f"command[{i}]", allow_empty=i > 0) for i, a in enumerate(cmd))
    return argv, None, None


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
        base, entries = job_dir, [as_line(e, f"inputs[{i}]") for i, e in enumerate(spec)]
        what = "inputs"
    elif spec is not None:
        pattern = as_line(spec, "inputs")
        base, entries = list_inputs("glob", pattern, job_dir)
        what = f"inputs = {pattern!r}"
        if not entries:
            raise JobSpecError(
                f"{what} matches nothing under {job_dir}",
                "check the pattern; it is relative to the job file",
            )
    else:
        name = as_line(list_file, "inputs_file")
        base, entries = list_inputs("file", name, job_dir)
        what = f"inputs_file = {name!r}"
    if not entries:
        raise JobSpecError(f"{what} lists no paths", "add one path per line")
    out = []
    for entry in entries:
        if "\n" in entry or "\r" in entry or "\x1f" in entry:
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
