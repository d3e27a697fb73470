"""Command wrappers: small executables that run a command of an image like a local binary.

``hpcbridge wrap IMAGE python3 samtools --dir bin/`` converts IMAGE once (the SIF
is pinned by manifest digest in the cache) and writes ``bin/python3`` and
``bin/samtools``: POSIX shell scripts that ``exec`` the runtime on that SIF with
the site's default binds, the caller's working directory (the runtime keeps it)
and the arguments passed through untouched (``"$@"``).  ``--module FILE`` also
writes an Lmod (``.lua``) or Environment Modules (Tcl) file putting the
directory on PATH and loading the runtime's modules.

The texts are built by pure functions; :func:`write_wrappers` writes them
atomically with mode 0755.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import InputError
from hpcbridge.fsutil import atomic_write_text, ensure_dir
from hpcbridge.job.spec import Bind

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.images.progress import Progress

#: Host variables unset before the runtime starts (without --cleanenv): they point at
#: host libraries or interpreters and break the image's programs (user pain point 13).
LEAKY_VARS = (
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PERL5LIB",
    "R_LIBS",
    "R_LIBS_USER",
)
_SIF_TOKEN = "HPCBRIDGE_WRAP_SIF"  # stands for "$sif" while the argv is built and quoted
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


@dataclass(frozen=True)
class PinnedImage:
    ref: str  # as the user gave it
    digest: str  # sha256:<manifest digest>
    sif: str  # the cached SIF path
    sif_sha256: str
    restore: str  # a reference that converts the same digest again


@dataclass(frozen=True)
class WrapOptions:
    flavor: str = "apptainer"
    executable: str = "apptainer"
    version: Optional[str] = None
    binds: tuple[Bind, ...] = ()
    cleanenv: bool = False
    gpu: Optional[str] = None  # nvidia | amd


def pinned_ref(ref: str, digest: str) -> str:
    """A reference to ``digest`` itself (``registry/repo@sha256:...``) when ``ref`` is a
    registry reference; other sources (archives, layouts, .sif) are returned as given."""
    from hpcbridge.images.refs import RegistryRef, parse_ref

    try:
        parsed = parse_ref(ref)
    except Exception:  # an unparseable ref cannot have been converted; keep it
        return ref
    if isinstance(parsed, RegistryRef):
        return f"docker://{parsed.name}@{digest}"
    return ref


def wrapper_name(command: str) -> str:
    name = os.path.basename(command.rstrip("/"))
    if not _NAME_RE.match(name):
        raise InputError(
            f"cannot name a wrapper after {command!r}",
            "give the command's file name (letters, digits, . _ + -)",
        )
    return name


def wrapper_script(command: str, image: PinnedImage, opts: WrapOptions) -> str:
    """The text of one wrapper (POSIX sh)."""
    from hpcbridge.render.apptainer import BindArg, ContainerCall, build_argv
    from hpcbridge.render.words import quote_argv

    if not command or "\n" in command or "\0" in command:
        raise InputError(f"bad command {command!r}", "give a command name or path in the image")
    call = ContainerCall(
        image=_SIF_TOKEN,
        command=(command,),
        flavor=opts.flavor,
        executable=opts.executable,
        version=opts.version,
        binds=tuple(BindArg(b.src, b.dst, b.read_only) for b in opts.binds),
        cleanenv=opts.cleanenv,
        gpu=opts.gpu,
    )
    argv = quote_argv(build_argv(call))
    if argv.count(f" {_SIF_TOKEN} ") != 1:  # pragma: no cover - the token is shell-safe
        raise AssertionError("image placeholder not found once in the runtime argv")
    argv = argv.replace(f" {_SIF_TOKEN} ", ' "$sif" ')
    name = wrapper_name(command)
    restore = quote_argv(["hpcbridge", "convert", image.restore])
    lines = [
        "#!/bin/sh",
        f"# {name}: {command!r} from {image.ref}, run by {opts.flavor} like a local program.",
        f"# Pinned to image {image.digest} (SIF sha256 {image.sif_sha256}).",
        "# Written by `hpcbridge wrap`; run it again to change this file.",
        f"sif={quote_argv([image.sif])}",
        'if [ ! -r "$sif" ]; then',
        f"    printf '%s\\n' {quote_argv([f'{name}: the pinned image is missing: '])}\"$sif\""
        f"{quote_argv(['; restore it with: ' + restore])} >&2",
        "    exit 127",
        "fi",
    ]
    if not opts.cleanenv:
        lines.append(f"unset {' '.join(LEAKY_VARS)}")
    lines.append(f'exec {argv} "$@"')
    return "\n".join(lines) + "\n"


def module_file(
    bin_dir: str, image: PinnedImage, commands: Sequence[str], modules: Sequence[str], lua: bool
) -> str:
    """An Lmod (Lua) or Environment Modules (Tcl) file putting ``bin_dir`` on PATH."""
    names = ", ".join(wrapper_name(c) for c in commands)
    what = f"{names} from {image.ref} ({image.digest}) via hpcbridge wrappers"
    if lua:
        out = [f"-- {what}", f"whatis({json.dumps(what)})"]
        out += [f"depends_on({json.dumps(m)})" for m in modules]
        out.append(f'prepend_path("PATH", {json.dumps(bin_dir)})')
        return "\n".join(out) + "\n"
    out = ["#%Module1.0", f"## {what}", f"module-whatis {_tcl(what)}"]
    out += [f"module load {_tcl(m)}" for m in modules]
    out.append(f"prepend-path PATH {_tcl(bin_dir)}")
    return "\n".join(out) + "\n"


def _tcl(text: str) -> str:
    """A Tcl word: braces when balanced and free of backslashes, else escaped quotes."""
    if text and "\\" not in text and text.count("{") == text.count("}") and "\n" not in text:
        depth = 0
        for ch in text:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                break
        else:
            return "{" + text + "}"
    return '"' + re.sub(r'([\\"$\[\]{}])', r"\\\1", text) + '"'


@dataclass(frozen=True)
class Wrapped:
    """What ``wrap`` wrote, and the image every wrapper pins."""

    image: PinnedImage
    files: tuple[Path, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image.ref,
            "digest": self.image.digest,
            "sif": self.image.sif,
            "sif_sha256": self.image.sif_sha256,
            "files": [str(p) for p in self.files],
        }


def check_binds(specs: Sequence[str], binds: Sequence[Bind], cfg: Config) -> None:
    """``--bind`` sources under the site's rules, as a job's binds (deny/allow, exist)."""
    from hpcbridge.config.validate import bind_problem

    for spec, bind in zip(specs, binds):
        problem = bind_problem(bind.src, bind.per_task, cfg)
        if problem:
            raise InputError(f"--bind {spec!r}: source {bind.src!r} {problem[0]}", problem[1])


def wrap_image(
    cfg: Config,
    image: str,
    commands: Sequence[str],
    bin_dir: Path,
    *,
    module: Optional[Path] = None,
    binds: Sequence[str] = (),
    cleanenv: bool = False,
    gpu: Optional[str] = None,
    force: bool = False,
    progress: Optional[Progress] = None,
) -> Wrapped:
    """Convert ``image`` (once) and write a wrapper per command pinned to its digest.

    ``binds`` use the job-file syntax (``SRC[:DST[:ro]]``, relative to the current
    directory) and come after the site's default binds.
    """
    from hpcbridge.images.convert import convert_with_config
    from hpcbridge.job.load import job_from_dict

    extra: tuple[Bind, ...] = ()
    if binds:
        data = {"name": "wrap", "image": image, "command": ["true"], "binds": list(binds)}
        extra = job_from_dict(data, job_dir=str(Path.cwd())).binds
    check_binds(binds, extra, cfg)  # before anything is converted or written
    res = convert_with_config(image, cfg, progress=progress)
    pinned = PinnedImage(
        image, res.digest, str(res.path), res.sif_sha256, pinned_ref(image, res.digest)
    )
    opts = WrapOptions(
        flavor=cfg.runtime.flavor,
        executable=cfg.runtime.executable or cfg.runtime.flavor,
        version=cfg.runtime.version,
        binds=(*cfg.binds.default, *extra),
        cleanenv=cleanenv,
        gpu=gpu,
    )
    written = write_wrappers(
        bin_dir, commands, pinned, opts, module=module, modules=cfg.runtime.modules, force=force
    )
    return Wrapped(pinned, tuple(written))


def write_wrappers(
    bin_dir: Path,
    commands: Sequence[str],
    image: PinnedImage,
    opts: WrapOptions,
    *,
    module: Optional[Path] = None,
    modules: Sequence[str] = (),
    force: bool = False,
) -> list[Path]:
    """Write one wrapper per command (and the module file); return the paths written."""
    texts = {wrapper_name(c): wrapper_script(c, image, opts) for c in commands}
    if len(texts) != len(commands):
        raise InputError("two commands would get the same wrapper name", "wrap them separately")
    targets = [bin_dir / name for name in texts]
    for path in targets:
        if path.exists() and not force and not _is_ours(path):
            raise InputError(
                f"{path} exists and was not written by hpcbridge wrap",
                "choose another --dir or pass --force",
            )
    ensure_dir(bin_dir)
    written: list[Path] = []
    for path, text in zip(targets, texts.values()):
        atomic_write_text(path, text, mode=0o755)
        written.append(path)
    if module is not None:
        ensure_dir(module.parent)
        text = module_file(
            str(bin_dir.absolute()), image, commands, modules, lua=module.suffix == ".lua"
        )
        atomic_write_text(module, text)
        written.append(module)
    return written


def _is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return "Written by `hpcbridge wrap`" in head
