"""``hpcbridge srun``: an interactive (or one-off) step with pyxis options, from a login node.

``hpcbridge srun --container-image=ubuntu:24.04 --pty bash`` converts the image
once on this node, then becomes ``bash -c SHIM hpcbridge-srun ARGS...``: the
same run-time shim a job's ``srun`` goes through (templates/pyxis-srun.sh.j2),
so the options mean exactly what they mean in a batch script.  The real srun
gets every Slurm option unchanged (``--pty``, ``-p``, ``--gres``...) and a new
allocation, or a step of the current one when run inside a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from hpcbridge import runner
from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import interpret
from hpcbridge.pyxis.options import from_environment
from hpcbridge.pyxis.resources import job_resources
from hpcbridge.pyxis.shim import render_shim, shim_context
from hpcbridge.pyxis.srun import split_srun
from hpcbridge.pyxis.steps import ImageUse
from hpcbridge.submit.pyxis_images import Planned, plan_images

if TYPE_CHECKING:
    from hpcbridge.config import Config

OWN_FLAGS = ("--dry-run",)


@dataclass(frozen=True)
class SrunPlan:
    args: tuple[str, ...]  # srun's arguments, as given (hpcbridge's own flags removed)
    shim: str
    images: tuple[Planned, ...]
    notes: tuple[str, ...]
    dry_run: bool

    def argv(self) -> list[str]:
        return ["/bin/bash", "-c", self.shim, "hpcbridge-srun", *self.args]


def plan_srun(
    argv: tuple[str, ...], cfg: Config, *, environ: Mapping[str, str], cwd: str
) -> SrunPlan:
    """Check the options, convert the image (see the module docstring)."""
    start = len(argv) - len(split_srun(argv).command)  # hpcbridge's flags: before the command
    args = [a for a in argv[:start] if a not in OWN_FLAGS] + list(argv[start:])
    dry_run = len(args) != len(argv)
    line = split_srun(args)
    if not line.command:
        raise InputError(
            "no command after the srun options",
            "e.g. hpcbridge srun --container-image=ubuntu:24.04 --pty bash",
        )
    raw = from_environment(environ).merged_under(line.pyxis)
    opts = interpret(raw, cwd)
    resources = job_resources(line.slurm, cfg)
    notes = list(resources.notes)
    uses = [ImageUse(opts.image, cwd, 0)] if opts.image else []
    if not raw.enabled:
        notes.append("no --container-image or --container-name: srun runs on the host")
    if opts.name:
        notes.append(
            f"--container-name={opts.name}: a new allocation is a new job; the container "
            "lives only as long as this job (run hpcbridge srun inside salloc to keep it "
            "across steps)"
        )
    images, image_notes = plan_images(uses, cfg, dry_run=dry_run)
    from hpcbridge.submit.pyxis import hpcbridge_command

    shim_images = [p.shim for p in images]
    shim = render_shim(
        shim_context(cfg, shim_images, resources.gpu_vendor, hpcbridge_command()), cfg
    )
    return SrunPlan(tuple(args), shim, tuple(images), tuple(notes + image_notes), dry_run)


def srun_dry_run(plan: SrunPlan) -> str:
    """The command the shim would run (nothing is started)."""
    done = runner.run(plan.argv(), extra_env={"HPCB_PYXIS_PRINT": "1"}, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise InputError(
            lines[-1].removeprefix("hpcbridge: error: ") if lines else "srun shim failed"
        )
    return done.stdout


def srun_exec(plan: SrunPlan) -> NoReturn:
    """Become the shim (the terminal stays attached for --pty)."""
    runner.replace_process(plan.argv())
