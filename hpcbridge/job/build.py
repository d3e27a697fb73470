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
from hpcbridge.job.fields import as_line, as_lines, as_list, as_str, opt_str, template
from hpcbridge.job.schema import SCHEMA, check_keys
from hpcbridge.job.sections import (
    container_path,
    parse_binds,
    parse_deps,
    parse_env,
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

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

# ----------------------------------------------------------------------- build


def build_job(
    data: Mapping[str, Any], *, job_dir: str, source: Optional[str], list_inputs: ListInputs
) -> JobSpec:
    """Validate ``data`` (a parsed job file) into a :class:`JobSpec`."""
    check_keys(data, SCHEMA, "")
    for section, sub in SCHEMA.items():  # keys of tables first: misplaced top-level keys
        if isinstance(sub, dict) and isinstance(data.get(section), dict):
            check_keys(data[section], sub, f"{section}.")
    if "image" not in data:
        raise JobSpecError("the job has no image", 'add image = "docker://..." or a .sif path')
    image = _image(as_line(data["image"], "image"), job_dir)
    command, script = _command(data)
    inputs = _inputs(data, job_dir, list_inputs)
    allowed = PLACEHOLDERS if inputs else tuple(p for p in PLACEHOLDERS if p not in INPUT_FIELDS)
    if command is not None:
        for i, arg in enumerate(command):
            template(arg, f"command[{i}]", allowed)
    array = _array(data.get("array"), inputs)
    binds = parse_binds(data.get("binds", []), job_dir, allowed)
    env = parse_env(data.get("env", {}), allowed)
    resources = parse_resources(data.get("resources", {}))
    gpu = parse_gpu(data.get("gpu"), resources)
    workdir = opt_str(data, "workdir", "workdir")
    if workdir is not None:
        container_path(workdir, "workdir")
        template(workdir, "workdir", ())
    output = opt_str(data, "output", "output")
    error = opt_str(data, "error", "error")
    for key, val in (("output", output), ("error", error)):
        if val is not None:
            template(val, key, ())
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
        mpi=parse_mpi(data.get("mpi")),
        gpu=gpu,
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
        return None, as_str(data["script"], "script")
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
    return tuple(as_str(a, f"command[{i}]", allow_empty=i > 0) for i, a in enumerate(cmd)), None


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
