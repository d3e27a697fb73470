"""Shared by the golden, exec-flag and testbed render tests: load a golden case.

A case is ``cases/<name>.toml`` rendered with ``site.toml`` as the site config,
as if the job file lived in ``/home/alice/project`` (so the goldens do not depend
on where the repository is checked out).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from hpcbridge import _toml
from hpcbridge.config import Config, load_config
from hpcbridge.job.load import job_from_dict
from hpcbridge.job.spec import JobSpec
from hpcbridge.render import RenderedJob, ResolvedImage, TrackingContext, render_job

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
SITE = HERE / "site.toml"
JOB_DIR = "/home/alice/project"
SUBMISSION = "hpcb-20261122-0001"
OUTCOMES = f"/home/alice/.local/state/hpcbridge/submissions/{SUBMISSION}/outcomes"
IMAGE = ResolvedImage(
    ref="docker://ghcr.io/example/tools:1.2",
    digest="sha256:" + "3" * 64,
    sif_path="/home/alice/.cache/hpcbridge/sif/sha256-" + "3" * 64 + ".sif",
    sif_sha256="7" * 64,
)


def case_names() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.toml"))


def golden_config(tmp: Path, site: Path = SITE, **overrides: Any) -> Config:
    """The golden site config, isolated from the caller's own config files."""
    environ = {"HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "config"), "USER": "alice"}
    environ["HPCBRIDGE_SITE_CONFIG"] = str(site)
    return load_config(overrides, cwd=tmp, environ=environ)


def load_case(name: str, sets: tuple[str, ...] = ()) -> JobSpec:
    data = _toml.load_bytes((CASES / f"{name}.toml").read_bytes())
    return job_from_dict(data, job_dir=JOB_DIR, sets=sets, source=f"{JOB_DIR}/{name}.toml")


def image_for(job: JobSpec, sif_path: Optional[str] = None) -> ResolvedImage:
    return ResolvedImage(
        ref=job.image,
        digest=IMAGE.digest,
        sif_path=sif_path or IMAGE.sif_path,
        sif_sha256=IMAGE.sif_sha256,
    )


def render_case(name: str, tmp: Path) -> RenderedJob:
    job = load_case(name)
    cfg = golden_config(tmp)
    return render_job(
        job, cfg, image=image_for(job), tracking=TrackingContext(SUBMISSION, OUTCOMES)
    )


def golden_path(name: str) -> Path:
    return HERE / f"{name}.sh"


def update_requested() -> bool:
    return os.environ.get("HPCBRIDGE_UPDATE_GOLDEN") == "1"


def container_argvs(script: str) -> list[list[str]]:
    """Every runtime command line of a rendered script, as argv lists.

    The scripts hold the runtime argv in a bash array ``hpcb_container=( ... )``
    (one option per line); shlex reads the words exactly as bash does for the
    quoting forms the renderer emits (single quotes, ``"${var}"``).
    """
    import shlex

    out: list[list[str]] = []
    lines = script.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "hpcb_container=(":
            body: list[str] = []
            i += 1
            while lines[i].strip() != ")":
                body.append(lines[i])
                i += 1
            out.append(shlex.split("\n".join(body)))
        i += 1
    return out


#: The pyxis-style golden: ``hpcbridge sbatch`` with these arguments, run in JOB_DIR.
PYXIS_ARGV = [
    "-p",
    "gpu",
    "--gres=gpu:1",
    "--container-image=nvcr.io#nvidia/pytorch:24.01-py3",
    "--container-env=NCCL_DEBUG,WANDB_MODE",
    "--no-container-mount-home",
    "pyxis-train.sh",
    "--epochs",
    "3 (three)",
]


def render_pyxis_case(
    tmp: Path,
    argv: Optional[list[str]] = None,
    script: str = "pyxis-train.sh",
    **overrides: Any,
) -> RenderedJob:
    """``hpcbridge sbatch ARGV`` of ``inputs/<script>`` rendered as if run in JOB_DIR, every
    image it names converted to :data:`IMAGE`'s SIF (the unit tests' stand-in)."""
    from hpcbridge.pyxis.args import plan_request
    from hpcbridge.pyxis.resources import job_resources, job_words
    from hpcbridge.pyxis.scan import scan_script
    from hpcbridge.pyxis.script import render_pyxis
    from hpcbridge.pyxis.shim import ShimImage, shim_key
    from hpcbridge.pyxis.steps import find_steps
    from hpcbridge.pyxis.values import image_reference
    from hpcbridge.render.context import PyxisImage

    text = (HERE / "inputs" / script).read_text(encoding="utf-8")
    request = plan_request(
        argv or [*PYXIS_ARGV[:-3], script, *PYXIS_ARGV[-2:]], lambda _p: text, {}, JOB_DIR
    )
    cfg = golden_config(tmp, **overrides)
    if request.whole.image:
        values = [request.whole.image]
    else:
        scan = scan_script(text, environ={}, cwd=JOB_DIR, args=request.script_args)
        values = [u.value for u in find_steps(scan, {}).images]
    images = [
        (
            PyxisImage(v, image_reference(v), IMAGE.digest, IMAGE.sif_path, ""),
            ShimImage(shim_key(v, JOB_DIR), IMAGE.sif_path, "/workspace", ""),
        )
        for v in values
    ]
    words = job_words([h.slurm for h in request.header], {}, request.sbatch_options)
    return render_pyxis(
        request, cfg, images=images, gpu_vendor=job_resources(words, cfg).gpu_vendor
    )
