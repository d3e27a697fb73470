"""The container steps of a pyxis-style script, as far as they are known at submit time (pure).

:func:`find_steps` reads what :mod:`hpcbridge.pyxis.scan` found: every ``srun``
whose options (or ``PYXIS_CONTAINER_*`` variables) ask for a container.  Steps
whose options are fully known are checked now, the way pyxis and the run-time
shim will read them (an error names the script line and the fix); their images
are listed for conversion on the login node.  A value only the running job
knows (``$(...)``, ``$SLURM_JOB_ID``...) is left to the shim, with a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import interpret
from hpcbridge.pyxis.options import RawOptions, from_environment
from hpcbridge.pyxis.scan import UNKNOWN, Scan, Step
from hpcbridge.pyxis.srun import split_srun
from hpcbridge.pyxis.values import Mount


@dataclass(frozen=True)
class ImageUse:
    """An ``--container-image`` value and where it is used."""

    value: str
    cwd: str  # what a relative path is relative to
    line: int  # script line (0: the command line / whole script)


@dataclass
class Steps:
    images: list[ImageUse] = field(default_factory=list)
    mounts: list[tuple[int, Mount]] = field(default_factory=list)
    container_lines: list[int] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)  # absolute --container-save paths
    notes: list[str] = field(default_factory=list)

    def add_image(self, use: ImageUse) -> None:
        if all((u.value, u.cwd) != (use.value, use.cwd) for u in self.images):
            self.images.append(use)


def find_steps(scan: Scan, environ: Mapping[str, str]) -> Steps:
    """The container steps of ``scan`` (see the module docstring)."""
    out = Steps()
    env_images = [i for i in scan.values("PYXIS_CONTAINER_IMAGE") if i]
    if environ.get("PYXIS_CONTAINER_IMAGE"):
        env_images.append(environ["PYXIS_CONTAINER_IMAGE"])
    unresolved: list[int] = []
    for step in scan.steps:
        where = f"script line {step.line}: "
        try:
            line = split_srun(step.argv, where)
        except InputError:
            if step.exact:
                raise
            unresolved.append(step.line)
            continue
        raw = line.pyxis
        defaults = from_environment({**environ, **dict(step.env)})
        if not raw.enabled and not defaults.enabled and not env_images:
            continue
        _step(out, step, raw, where, unresolved)
        if not raw.image:
            for value in [*([defaults.image] if defaults.image else []), *env_images]:
                out.add_image(ImageUse(value, step.cwd, step.line))
    for n in sorted(set(unresolved)):
        out.notes.append(
            f"script line {n}: srun's container options are only known when the job runs "
            "(e.g. $(...) or $SLURM_* in them); an image not converted now is fetched "
            "by Apptainer on the node"
        )
    return out


def _step(out: Steps, step: Step, raw: RawOptions, where: str, unresolved: list[int]) -> None:
    out.container_lines.append(step.line)
    if raw.image and UNKNOWN not in raw.image:
        out.add_image(ImageUse(raw.image, step.cwd, step.line))
    elif raw.image:
        unresolved.append(step.line)
    known = RawOptions(
        {k: v for k, v in raw.values.items() if UNKNOWN not in v},
        [m for m in raw.mounts if UNKNOWN not in m],
        [e for e in raw.env if UNKNOWN not in e],
        dict(raw.flags),
    )
    try:
        opts = interpret(known, step.cwd)
    except InputError as exc:
        raise InputError(where + exc.message, exc.hint) from None
    out.mounts += [(step.line, m) for m in opts.mounts]
    if opts.save:
        out.saves.append(opts.save)
