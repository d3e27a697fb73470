"""``hpcbridge sbatch``: pyxis-style sbatch that runs a batch script in a container."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.pyxis.args import PyxisRequest
    from hpcbridge.render.types import ResolvedImage

_HELP = """Run an existing batch script inside a container, with pyxis' flags.

\b
  hpcbridge sbatch [sbatch options] --container-image=REF
      [--container-mounts=SRC:DST[:ro],...] [--container-workdir=DIR]
      [--container-env=NAME,...] [--[no-]container-mount-home]
      [--container-writable|--container-readonly] [--container-remap-root]
      [--dry-run] script.sh [args...]

The image (REGISTRY#IMAGE:TAG, IMAGE:TAG, docker://..., or a .sif path) is
converted once to a cached SIF; the script's #SBATCH lines are kept, sbatch
options pass through to sbatch, PYXIS_CONTAINER_* variables give defaults.
--dry-run prints the generated script and submits nothing.
"""


@click.command(
    help=_HELP,
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["--help"],
    },
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sbatch(ctx: click.Context, args: tuple[str, ...]) -> None:
    from hpcbridge.config import load_config
    from hpcbridge.pyxis.args import plan_request

    cwd = os.getcwd()
    request, text, lines = plan_request(args, _read_script, os.environ, cwd)
    cfg = load_config()
    _check_mounts(request, cfg)
    image = _resolve(request.container.image or "", cfg)
    from hpcbridge.pyxis.script import render_pyxis

    rendered = render_pyxis(
        text,
        request.script,
        request.script_args,
        request.container,
        cfg,
        image=image,
        comment_lines=lines,
        sbatch_options=request.sbatch_options,
    )
    if request.dry_run:
        click.echo(rendered.script, nl=False)
        return
    ctx.exit(_submit(rendered.script, request.script, request.sbatch_options, cfg, cwd))


def _read_script(path: str) -> str:
    from hpcbridge.errors import InputError

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"batch script {path!r} does not exist", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"batch script {path!r} is a directory", "give a file") from None
    except UnicodeDecodeError:
        raise InputError(f"batch script {path!r} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read batch script {path!r}: {exc.strerror}") from None


def _check_mounts(request: PyxisRequest, cfg: Config) -> None:
    """Site bind policy and existence of mount sources (the job-file rules)."""
    from hpcbridge.config import validate_job
    from hpcbridge.errors import JobSpecError
    from hpcbridge.job.spec import Bind, JobSpec

    binds = tuple(
        Bind(m.src, m.dst, "ro" if m.readonly else "rw") for m in request.container.mounts
    )
    job = JobSpec(name="sbatch", image="x.sif", command=("true",), binds=binds)
    try:
        validate_job(job, cfg)
    except JobSpecError as exc:
        raise JobSpecError(
            exc.message.replace("binds[", "--container-mounts entry ["), exc.hint
        ) from None


def _resolve(image: str, cfg: Config) -> ResolvedImage:
    from hpcbridge.job.spec import JobSpec
    from hpcbridge.pyxis.values import image_reference
    from hpcbridge.submit.submitter import resolve_image

    ref = image_reference(image)
    if ref.endswith(".sif") and not ref.startswith("docker://"):
        ref = os.path.abspath(ref)
    return resolve_image(JobSpec(name="sbatch", image=ref, command=("true",)), cfg)


def _submit(script: str, source: str, options: tuple[str, ...], cfg: Config, cwd: str) -> int:
    """Write the script under the state dir and run sbatch on it."""
    import time

    from hpcbridge import runner
    from hpcbridge.fsutil import atomic_write_text, ensure_dir
    from hpcbridge.scheduler.slurm import parse_sbatch

    folder = ensure_dir(cfg.state.dir / "sbatch", mode=0o700)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.path.basename(source)}"
    atomic_write_text(path, script, mode=0o700)
    # the user's own options decide everything (including -M/--clusters), as with sbatch
    argv = ["sbatch", *options, str(path)]
    if "--parsable" not in options and "--test-only" not in options:
        argv.insert(1, "--parsable")
    done = runner.run(argv, cwd=cwd, check=False, timeout=120)
    if done.returncode != 0 or "--test-only" in options:
        click.echo(done.stderr, nl=False, err=True)
        click.echo(done.stdout, nl=False)
        return done.returncode
    if "--parsable" in options:
        click.echo(done.stdout, nl=False)
    else:
        click.echo(f"Submitted batch job {parse_sbatch(done.stdout).job_id}")
    return 0
