"""Builders of the job file's ``binds`` and ``overlays`` (pure).

A host path (bind source, overlay) may hold per-task placeholders (``{task}``,
``{input}``...), per-rank ones (``{rank}``, ``{local_rank}``, ``{node}``) and
``$VAR``/``${VAR}`` (``$$`` is a literal ``$``).  Paths with a per-rank
placeholder or a variable are *run-time* paths: the login node cannot know them,
so each task resolves and checks them on its node (``$TMPDIR``,
``/local/$SLURM_JOB_ID``, ``overlay{rank}.ext3``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from typing import Any

from hpcbridge.errors import JobSpecError
from hpcbridge.job.fields import as_line, choice
from hpcbridge.job.schema import check_keys
from hpcbridge.job.spec import Bind, Overlay
from hpcbridge.job.values import (
    INPUT_FIELDS,
    RANK_FIELDS,
    TASK_FIELDS,
    Field,
    TemplatePart,
    is_run_time,
    parse_template,
)

#: Bind destinations that break the container: the runtime mounts its own there.
REFUSED_DESTINATIONS = ("/", "/proc", "/dev", "/sys", "/.singularity.d")
#: ... and everything below these.
REFUSED_DESTINATION_TREES = ("/proc", "/.singularity.d")
#: Bind options besides ro/rw (Apptainer's bindOptions): a value each.
BIND_OPTIONS = ("image-src", "id")
_OPTION_HINT = "options are ro, rw, image-src=/PATH (a directory inside an image file), id=N"


def container_path(path: str, key: str) -> None:
    if not path.startswith("/"):
        raise JobSpecError(
            f"{key} = {path!r} is not an absolute container path", f"write /{path.lstrip('./')}"
        )


def _bind_from_str(text: str, key: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) > 3:
        raise JobSpecError(
            f"{key} = {text!r} has more than src:dst:options",
            'use a table: {src = "...", dst = "...", mode = "ro"}',
        )
    if len(parts) == 2 and parts[1] in ("ro", "rw"):
        return {"src": parts[0], "dst": parts[0], "mode": parts[1]}
    table: dict[str, Any] = {"src": parts[0], "dst": parts[1] if len(parts) > 1 else parts[0]}
    for option in parts[2].split(",") if len(parts) == 3 else ():
        name, eq, value = option.partition("=")
        if name in ("ro", "rw") and not eq:
            table["mode"] = name
        elif name in BIND_OPTIONS and eq:
            table[name] = value
        else:
            raise JobSpecError(f"{key} = {text!r}: {option!r} is not a bind option", _OPTION_HINT)
    return table


def _options(table: dict[str, Any], key: str) -> tuple[str, ...]:
    out: list[str] = []
    if table.get("image-src") is not None:
        path = as_line(table["image-src"], f"{key}.image-src")
        if not path.startswith("/") or any(c in path for c in ',:"\\'):
            raise JobSpecError(
                f"{key}.image-src = {path!r} is not a path inside the image",
                'write it from the image root, e.g. "/" or "/data", without , : " \\',
            )
        out.append(f"image-src={posixpath.normpath(path)}")
    if table.get("id") is not None:
        ident = table["id"]
        if isinstance(ident, str) and ident.isdigit():
            ident = int(ident)
        if isinstance(ident, bool) or not isinstance(ident, int) or ident <= 0:
            raise JobSpecError(f"{key}.id = {ident!r} is not a SIF descriptor id", "e.g. id = 4")
        out.append(f"id={ident}")
    return tuple(out)


def _host_path(text: str, parts: Sequence[TemplatePart], job_dir: str) -> str:
    first = parts[0] if parts else ""
    anchored = (isinstance(first, Field) and first.name in INPUT_FIELDS) or not isinstance(
        first, (str, Field)
    )
    return text if os.path.isabs(text) or anchored else os.path.join(job_dir, text)


def check_destination(dst: str, key: str) -> None:
    """Refuse container paths the runtime owns (``/``, ``/proc``, ``/.singularity.d``...)."""
    container_path(dst, key)
    if ":" in dst or "," in dst:
        raise JobSpecError(
            f"{key} = {dst!r} contains ':' or ','",
            "Apptainer cannot bind to such a path; choose another",
        )
    norm = posixpath.normpath(dst)
    under = [t for t in REFUSED_DESTINATION_TREES if norm.startswith(t + "/")]
    if norm in REFUSED_DESTINATIONS or under:
        raise JobSpecError(
            f"{key} = {dst!r} would hide the container's own {under[0] if under else norm}",
            "bind to a directory of your own, e.g. /data",
        )


def parse_binds(
    value: Any, job_dir: str, allowed: Sequence[str] = (), *, env_refs: bool = False
) -> tuple[Bind, ...]:
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
            check_keys(item, {"src": 0, "dst": 0, "mode": 0, "image-src": 0, "id": 0}, f"{key}.")
            table = item
        else:
            raise JobSpecError(
                f'{key} = {item!r} is neither "src:dst[:options]" nor a table',
                'e.g. {src = "data", dst = "/data"}',
            )
        if "src" not in table:
            raise JobSpecError(f"{key} has no src", "add src = HOST_PATH")
        src = as_line(table["src"], f"{key}.src")
        dst = as_line(table.get("dst", src), f"{key}.dst")
        mode = choice(table.get("mode", "rw"), f"{key}.mode", ("ro", "rw"))
        check_destination(dst, f"{key}.dst")
        src_parts = parse_template(src, f"{key}.src", allowed, env_refs=env_refs)
        dst_parts = parse_template(dst, f"{key}.dst", allowed)
        per_task = any(
            isinstance(p, Field) and p.name in TASK_FIELDS + INPUT_FIELDS
            for p in (*src_parts, *dst_parts)
        )
        run_time = is_run_time(src_parts) or is_run_time(dst_parts)
        host = _host_path(src, src_parts, job_dir)
        options = _options(table, key)
        host = host if is_run_time(src_parts) else os.path.normpath(host)
        out.append(Bind(host, posixpath.normpath(dst), mode, per_task, options, run_time))
    seen: dict[str, int] = {}
    for i, b in enumerate(out):
        if b.dst in seen:
            raise JobSpecError(
                f"binds[{i}].dst = {b.dst!r} is already bound by binds[{seen[b.dst]}]",
                "give each bind its own destination",
            )
        seen[b.dst] = i
    return tuple(out)


def parse_overlays(value: Any, job_dir: str, allowed: Sequence[str]) -> tuple[Overlay, ...]:
    """``overlays = ["env.ext3:ro", {path = "rank{rank}.ext3"}]``."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        raise JobSpecError(f"overlays = {value!r} is not a list", 'e.g. overlays = ["env.ext3:ro"]')
    out: list[Overlay] = []
    for i, item in enumerate(items):
        key = f"overlays[{i}]"
        if isinstance(item, str):
            text = as_line(item, key)
            path, _, mode = (
                text.rpartition(":") if text.endswith((":ro", ":rw")) else (text, "", "")
            )
            table: dict[str, Any] = {"path": path, "mode": mode or "rw"}
        elif isinstance(item, dict):
            check_keys(item, {"path": 0, "mode": 0}, f"{key}.")
            table = item
        else:
            raise JobSpecError(
                f'{key} = {item!r} is neither "PATH[:ro]" nor a table', 'e.g. "env.ext3:ro"'
            )
        if "path" not in table:
            raise JobSpecError(f"{key} has no path", "add path = HOST_PATH")
        path = as_line(table["path"], f"{key}.path")
        mode = choice(table.get("mode", "rw"), f"{key}.mode", ("ro", "rw"))
        if any(c in path for c in ',:"'):
            raise JobSpecError(
                f"{key} = {path!r} contains ',', ':' or '\"'",
                "Apptainer's --overlay cannot take such a path; rename it",
            )
        parts = parse_template(path, key, allowed, env_refs=True)
        per_task = any(isinstance(p, Field) and p.name not in RANK_FIELDS for p in parts)
        host = _host_path(path, parts, job_dir)
        run_time = is_run_time(parts)
        out.append(Overlay(host if run_time else os.path.normpath(host), mode, per_task, run_time))
    writable = [i for i, o in enumerate(out) if not o.read_only]
    if len(writable) > 1:
        raise JobSpecError(
            f"overlays[{writable[0]}] and overlays[{writable[1]}] are both writable",
            "Apptainer takes one writable overlay: add :ro to the others "
            "(squashfs overlays are read-only anyway)",
        )
    return tuple(out)
