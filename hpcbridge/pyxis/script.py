"""Render a pyxis-style batch script: the user's script body runs in the container.

The generated script keeps the user's ``#SBATCH`` lines (``--container-*`` ones
become comments, since sbatch itself does not know them), records the outcome
like every hpcbridge job, writes the original script byte-exact to a private
temporary directory at run time, bind-mounts that directory and runs the script
there through ``apptainer exec`` on the cached SIF.

Environment, as with pyxis: the job's variables are visible in the container
(no ``--cleanenv``) and the image's own variables win; names listed in
``--container-env`` keep the host value.  Pure (reads templates only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

from hpcbridge.config.schema import Config
from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import ContainerOptions
from hpcbridge.render.apptainer import BindArg, ContainerCall, build_argv, env_prefix, group_argv
from hpcbridge.render.context import TRAPPED_SIGNALS, PyxisContext
from hpcbridge.render.environment import render_template, site_template_dir
from hpcbridge.render.launcher import launcher_argv
from hpcbridge.render.types import RenderedJob, ResolvedImage, TrackingContext
from hpcbridge.render.words import Arg, Var, Word

SCRIPT_DIR_VAR = "hpcb_script_dir"


def render_pyxis(
    script_text: str,
    script_name: str,
    script_args: Sequence[str],
    opts: ContainerOptions,
    cfg: Config,
    *,
    image: ResolvedImage,
    comment_lines: set[int],
    sbatch_options: Sequence[str] = (),
    tracking: Optional[TrackingContext] = None,
) -> RenderedJob:
    """The sbatch script running ``script_text`` inside ``image``."""
    if "\x00" in script_text:
        raise InputError(f"{script_name} contains a NUL byte", "is it a text file?")
    lines = script_text.splitlines()
    header: list[str] = []
    for n, line in enumerate(lines):
        stripped = line.strip()
        if n == 0 and stripped.startswith("#!"):
            continue
        if stripped.startswith("#SBATCH"):
            header.append(
                ("# (pyxis option, handled by hpcbridge) " + line) if n in comment_lines else line
            )
            continue
        if stripped and not stripped.startswith("#"):
            break
    base = os.path.basename(script_name) or "script.sh"
    inside = Word.of(Var(SCRIPT_DIR_VAR), "/" + base)
    flavor = cfg.runtime.flavor
    binds = [BindArg(m.src, m.dst, m.readonly) for m in opts.mounts]
    binds.append(BindArg(Word.of(Var(SCRIPT_DIR_VAR)), Word.of(Var(SCRIPT_DIR_VAR)), True))
    workdir: Arg = opts.workdir or image.workdir or Word.of(Var("PWD"))
    extra: list[str] = []
    if opts.remap_root:
        extra.append("--fakeroot")
    call = ContainerCall(
        image=image.sif_path,
        command=(inside, *script_args),
        flavor=flavor,
        executable=cfg.runtime.executable,
        version=cfg.runtime.version,
        binds=tuple(binds),
        pwd=workdir,
        cleanenv=False,
        no_home=opts.mount_home is False,
        writable_tmpfs=bool(opts.writable),
        extra_options=tuple(extra),
    )
    argv = build_argv(call)
    context = PyxisContext(
        header=tuple(header),
        script_name=script_name,
        sbatch_options=tuple(sbatch_options),
        image_ref=image.ref,
        image_digest=image.digest,
        image_sha256=image.sif_sha256,
        submission_id=tracking.submission_id if tracking else None,
        task_offset=0,
        outcomes_dir=tracking.outcomes_dir if tracking else None,
        signals=TRAPPED_SIGNALS,
        modules=cfg.runtime.modules,
        body=script_text,
        body_name=base,
        launcher=tuple(launcher_argv([], list(opts.env), env_prefix(flavor))),
        container=group_argv(argv, flavor),
    )
    text = render_template("pyxis.sh.j2", context, site_template_dir(cfg))
    return RenderedJob(text, base, None, (0,), {})
