"""The run-time pieces of a pyxis-style job: the ``srun`` shim and the per-task step program.

Both are bash, rendered from templates/pyxis-srun.sh.j2 and pyxis-step.sh.j2
(see their headers for what they do).  :class:`ShimContext` is what the shim
template sees: the images converted at submit time, the site's default binds,
the GPU flag of the job, the MPI settings of the site.  Pure (reads templates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple, Optional

from hpcbridge.config.schema import Config
from hpcbridge.pyxis.srun import VALUE_LONG, VALUE_SHORT
from hpcbridge.render.apptainer import BindArg, bind_args, has_flag
from hpcbridge.render.environment import render_template, site_template_dir
from hpcbridge.render.words import Arg


class ShimImage(NamedTuple):
    """One image the job may run: the value as the shim normalises it, and its SIF."""

    key: str  # REGISTRY/IMAGE:TAG (docker:// and pyxis' '#' removed) or an absolute path
    sif: str  # the cached SIF ("" when a dry run could not resolve it)
    workdir: str  # the image's WorkingDir ("" unknown/none)
    stamp: str  # a local file's "size:mtime" when it was converted ("" for references)


@dataclass(frozen=True)
class ShimContext:
    """What ``pyxis-srun.sh.j2`` sees."""

    runtime: str  # apptainer / singularity executable
    images: tuple[ShimImage, ...]
    gpu_options: tuple[str, ...]  # ("--nv",), ("--rocm",) or ()
    site_options: tuple[Arg, ...]  # --no-eval, the site's default binds
    mpi_env: tuple[str, ...]  # NAME=VALUE set in MPI ranks (srun --mpi=...) unless set
    step_code: str
    value_long: tuple[str, ...]  # srun's long options taking a value
    value_short: str
    hpcbridge: str  # the hpcbridge command, for images only known at run time ("" none)
    rewrite: tuple[str, ...]  # convert.rewrite rules, applied to those

    def __post_init__(self) -> None:
        for image in self.images:
            for text in image:
                if "\n" in text or "\x00" in text:
                    raise ValueError(f"a line break in an image row: {image!r}")


def shim_key(value: str, cwd: str) -> str:
    """The key the shim looks an ``--container-image`` value up by (same rule as the shim)."""
    import posixpath

    if value.startswith((".", "/")):
        return posixpath.normpath(posixpath.join(cwd, value)).replace("//", "/")
    rest = value[len("docker://") :] if value.startswith("docker://") else value
    return rest.replace("#", "/", 1)


def step_program(cfg: Config) -> str:
    """The per-task program (bash text passed to ``bash -c``)."""
    return render_template("pyxis-step.sh.j2", {}, site_template_dir(cfg)).strip() + "\n"


def site_options(cfg: Config) -> tuple[Arg, ...]:
    flavor = cfg.runtime.flavor
    out: list[Arg] = []
    if has_flag(flavor, cfg.runtime.version, "--no-eval"):
        out.append("--no-eval")  # --container-env values reach the container byte-exact
    for bind in cfg.binds.default:
        out.extend(bind_args(BindArg(bind.src, bind.dst, bind.read_only), flavor))
    return tuple(out)


def mpi_env(cfg: Config) -> tuple[str, ...]:
    """The site's MPI settings for ranks of an image whose MPI flavour is not known."""
    settings = {**cfg.mpi.env_for("openmpi"), **cfg.mpi.env_for("mpich")}
    return tuple(f"{k}={v}" for k, v in settings.items())


def shim_context(
    cfg: Config, images: Sequence[ShimImage], gpu: Optional[str], hpcbridge: str = ""
) -> ShimContext:
    return ShimContext(
        runtime=cfg.runtime.executable or cfg.runtime.flavor,
        images=tuple(images),
        gpu_options={"nvidia": ("--nv",), "amd": ("--rocm",)}.get(gpu or "", ()),
        site_options=site_options(cfg),
        mpi_env=mpi_env(cfg),
        step_code=step_program(cfg),
        value_long=tuple(sorted(VALUE_LONG)),
        value_short=VALUE_SHORT,
        hpcbridge=hpcbridge,
        rewrite=cfg.convert.rewrite,
    )


def render_shim(ctx: ShimContext, cfg: Config) -> str:
    variables = {f.name: getattr(ctx, f.name) for f in fields(ctx)}
    return render_template("pyxis-srun.sh.j2", variables, site_template_dir(cfg))
