"""Read a job file: :func:`load_job` and :func:`job_from_dict`.

The only module of :mod:`hpcbridge.job` touching the file system: it reads the
TOML job file, lists inputs (a glob, or the lines of an inputs file) and tells
whether the image names an existing file (a local image, never a Docker Hub
name); the validation itself is :func:`hpcbridge.job.build.build_job`, which is
pure.  A job file may be named ``hpcbridge.toml``: the configuration loader then
skips it as a project configuration (see :mod:`hpcbridge.config.loader`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from hpcbridge import _toml as tomllib
from hpcbridge.errors import JobSpecError
from hpcbridge.job.build import build_job
from hpcbridge.job.schema import apply_sets
from hpcbridge.job.spec import JobSpec


def load_job(path: str | os.PathLike[str], sets: Sequence[str] = ()) -> JobSpec:
    """Read a TOML job file, apply ``--set key=value`` overrides, validate.

    Raises :class:`JobSpecError` (one line naming the value and the fix) for any
    problem, including unknown keys (with the closest valid key).
    """
    job_path = Path(path)
    data = _read_job_file(job_path)
    job_dir = os.path.abspath(job_path.parent)
    try:
        data = apply_sets(data, sets)
        return build_job(
            data,
            job_dir=job_dir,
            source=os.path.abspath(job_path),
            list_inputs=_list_inputs,
            is_file=os.path.isfile,
        )
    except JobSpecError as exc:
        raise JobSpecError(f"{job_path}: {exc.message}", exc.hint) from None


def job_from_dict(
    data: Mapping[str, Any], *, job_dir: str, sets: Sequence[str] = (), source: Optional[str] = None
) -> JobSpec:
    """Build a job from an already-parsed mapping (inputs are globbed under ``job_dir``)."""
    merged = apply_sets(dict(data), sets)
    return build_job(
        merged,
        job_dir=os.path.abspath(job_dir),
        source=source,
        list_inputs=_list_inputs,
        is_file=os.path.isfile,
    )


def _read_job_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.load_bytes(path.read_bytes())
    except FileNotFoundError:
        raise JobSpecError(f"job file {str(path)!r} does not exist", "check the path") from None
    except IsADirectoryError:
        raise JobSpecError(f"job file {str(path)!r} is a directory", "give a .toml file") from None
    except OSError as exc:
        raise JobSpecError(f"cannot read job file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobSpecError(
            f"{path}: invalid TOML: {exc}", "fix the syntax (strings need quotes)"
        ) from None
    except UnicodeDecodeError:
        raise JobSpecError(f"{path}: not UTF-8 text", "save the job file as UTF-8") from None


def _list_inputs(kind: str, value: str, job_dir: str) -> tuple[str, list[str]]:
    """File access for inputs: ``kind`` "glob" -> sorted matches; "file" -> lines.

    Returns (base directory for relative entries, entries).  The
    :data:`~hpcbridge.job.build.ListInputs` callback of :func:`build_job`.
    """
    if kind == "glob":
        pattern = value if os.path.isabs(value) else os.path.join(job_dir, value)
        matches = sorted(glob.glob(pattern))  # files or directories; dotfiles need a dot
        return job_dir, [
            os.path.relpath(m, job_dir) if not os.path.isabs(value) else m for m in matches
        ]
    list_path = value if os.path.isabs(value) else os.path.join(job_dir, value)
    try:
        with open(list_path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise JobSpecError(
            f"inputs_file = {value!r}: {list_path} does not exist", "check the path"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"inputs_file = {value!r}: cannot read {list_path}: {exc}") from None
    entries = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return os.path.dirname(os.path.abspath(list_path)), entries
