"""Checks and translations: doctor, the layered configuration, recipes."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.api._common import config, config_with_sets
from hpcbridge.errors import InputError

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.doctor.findings import Finding, Status
    from hpcbridge.recipe.notes import Translation
    from hpcbridge.site_examples import SiteExample


@dataclass(frozen=True)
class DoctorReport:
    """Every finding of ``doctor`` and the worst status among them (the exit status)."""

    findings: tuple[Finding, ...]
    status: Status

    def to_dict(self) -> dict[str, Any]:
        """``doctor --json``: ``{"status": worst, "findings": [...]}``."""
        from hpcbridge.doctor.findings import report_dict

        return report_dict(self.findings)


def doctor(
    job_file: Optional[str] = None, sets: Sequence[str] = (), *, compute: bool = False
) -> DoctorReport:
    """Preflight checks of this machine and, with a job file, of the job; ``compute``: run
    the zstd probe on a compute node too (one ``srun`` step)."""
    from hpcbridge.doctor import diagnose, worst
    from hpcbridge.doctor.probe import gather
    from hpcbridge.job.load import load_job

    cfg = config()
    job = load_job(job_file, sets) if job_file else None
    findings = diagnose(gather(cfg, job, compute=compute), cfg, job)
    return DoctorReport(tuple(findings), worst(findings))


@dataclass(frozen=True)
class ConfigView:
    """The resolved configuration and, per dotted key, its value's text and source."""

    config: Config
    rows: tuple[tuple[str, str, str], ...]  # (dotted key, TOML-like value, source)


def config_show(sets: Sequence[str] = ()) -> ConfigView:
    """The configuration with ``--set KEY=VALUE`` overrides on top."""
    from hpcbridge.config.display import flat_items

    cfg = config_with_sets(sets)
    return ConfigView(cfg, tuple(flat_items(cfg)))


def config_check(path: Path) -> list[str]:
    """Every problem of a site (or user/project) configuration file; empty when valid."""
    from hpcbridge.config.loader import check_file

    return check_file(path)


def config_notes(path: Path) -> list[str]:
    """Remarks on a valid configuration file: experimental choices it makes."""
    from hpcbridge.config.loader import read_layer_file
    from hpcbridge.scheduler.slurm_pyslurm import backend_note

    section = read_layer_file(path, str(path)).get("scheduler")
    note = backend_note(str(section.get("backend"))) if isinstance(section, dict) else None
    return [note] if note else []


def config_examples() -> tuple[SiteExample, ...]:
    """The example site configurations shipped with hpcbridge (name, path, title)."""
    from hpcbridge.site_examples import examples

    return examples()


def config_example(name: str, *, output: Optional[Path] = None) -> SiteExample:
    """One example site configuration; with ``output``, copied there (a new file)."""
    from hpcbridge.site_examples import copy_example, example

    if output is not None:
        copy_example(name, output)
    return example(name)


def looks_like_def(text: str) -> bool:
    """Does the first instruction of ``text`` read ``Bootstrap:`` (a definition file)?"""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return bool(re.match(r"bootstrap\s*:", stripped, re.I))
    return False


def recipe(
    source: str, *, target: Optional[str] = None, output: Optional[Path] = None
) -> Translation:
    """Translate a Dockerfile to a definition file or back (``source`` ``-``: stdin);
    ``target`` None: the other format than the input's; written atomically to ``output``."""
    from hpcbridge.fsutil import atomic_write_text
    from hpcbridge.recipe import def_to_dockerfile, dockerfile_to_def

    name = "<stdin>" if source == "-" else source
    if output is not None and source != "-" and _same_file(Path(source), output):
        raise InputError(f"-o {output} is the input file {source}", "write the result elsewhere")
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}", "give a readable text file") from exc
    if target is None:
        target = "docker" if looks_like_def(text) else "def"
    result = def_to_dockerfile(text, name) if target == "docker" else dockerfile_to_def(text, name)
    if output is not None:
        try:
            atomic_write_text(output, result.text)
        except OSError as exc:
            raise InputError(
                f"cannot write -o {output}: {exc.strerror}",
                "give a file in an existing, writable directory",
            ) from None
    return result


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False
