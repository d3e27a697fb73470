"""Values of pyxis options, read as pyxis v0.24 reads them (pure).

``--container-mounts`` (``args.c``), ``--container-image`` (enroot's URI
grammar), ``--container-workdir`` (pyxis ``chdir()``s inside the container, so a
relative one is relative to the image's WorkingDir), ``--container-name``
flags.  The run-time shim (templates/pyxis-srun.sh.j2) applies the same rules
to options built at run time; tests/unit/test_pyxis_shim.py runs both on the
same cases.  What Apptainer cannot do is refused with what works instead.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import ConfigError, InputError

#: mount flags hpcbridge honours or may ignore (Apptainer binds are already private, nosuid)
MOUNT_FLAGS_OK = ("ro", "rw", "rbind", "bind", "nosuid", "nodev", "private", "rprivate")
_MOUNT_FLAGS_IGNORED_PREFIX = ("x-create=",)
NAME_FLAGS = ("auto", "create", "exec", "no_exec")
UNSHARE = ("net", "ipc", "uts")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


@dataclass(frozen=True)
class Mount:
    src: str
    dst: str
    readonly: bool = False


def clean_path(path: str) -> str:
    """Normalised absolute path: ``//mnt/./x/`` -> ``/mnt/x`` (as ``realpath -m -s``)."""
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm.startswith("/") else norm


def parse_mounts(value: str, cwd: str) -> list[Mount]:
    """``SRC:DST[:FLAGS][,...]``: split on ``,``, then ``:`` (the rest is FLAGS, ``+``
    separated); no ``:`` means DST = SRC.  Relative sources are relative to the job's
    directory, relative targets to the container's root; exact repeats are dropped."""
    out: list[Mount] = []
    for item in value.split(","):
        mount = _mount(item, value, cwd)
        if mount not in out:
            out.append(mount)
    return out


def _mount(item: str, value: str, cwd: str) -> Mount:
    if not item:
        raise InputError(f"--container-mounts={value} has an empty entry", "remove the extra comma")
    src, sep, rest = item.partition(":")
    dst, _, flags_text = rest.partition(":") if sep else (src, "", "")
    where = f"--container-mounts entry {item!r}"
    if not src or not dst:
        raise InputError(f"{where}: invalid format", "write SRC:DST[:FLAGS]")
    if src in ("tmpfs", "umount"):
        raise InputError(
            f"{where}: {src} mounts are not supported by hpcbridge",
            "bind a host directory instead (e.g. a directory under $TMPDIR)",
        )
    if not src.startswith((".", "/")):
        raise InputError(
            f'{where}: mount source must be a relative path, an absolute path, "tmpfs" or "umount"',
            "write ./dir or /abs/dir",
        )
    if not dst.startswith((".", "/")):
        raise InputError(
            f"{where}: mount target must be a relative path or an absolute path",
            "write /dir (a relative target is relative to the container's root)",
        )
    readonly = False
    for flag in re.split(r"[+,]", flags_text) if flags_text else []:
        if flag == "ro":
            readonly = True
        elif flag not in MOUNT_FLAGS_OK and not flag.startswith(_MOUNT_FLAGS_IGNORED_PREFIX):
            raise InputError(f"{where}: flag {flag!r} is not supported", "use ro or rw")
    target = clean_path("/" + dst)
    if target == "/":
        raise InputError(
            f"{where}: the target is the container's root directory "
            "(pyxis binds the directory over / and the container cannot start)",
            "to bind the current directory at the same path give --container-mounts=$PWD "
            "on the srun or sbatch command line (#SBATCH lines do not expand $PWD), "
            "or name a target: .:/workspace",
        )
    return Mount(clean_path(posixpath.join(cwd, src)), target, readonly)


def workdir_in(value: str, image_workdir: Optional[str]) -> str:
    """``--container-workdir``: absolute as given, else under the image's WorkingDir."""
    if not value:
        raise InputError("--container-workdir is empty", "give a directory in the container")
    base = image_workdir or "/"
    return clean_path(value if value.startswith("/") else posixpath.join(base, value))


def name_and_flag(value: str) -> tuple[str, str]:
    """``NAME[:FLAG]`` of ``--container-name``."""
    name, sep, flag = value.rpartition(":") if ":" in value else (value, "", "auto")
    if sep and flag not in NAME_FLAGS:
        raise InputError(
            f"--container-name={value}: flag must be " + ", ".join(f'"{f}"' for f in NAME_FLAGS),
            "e.g. --container-name=dev:no_exec",
        )
    if not _NAME.match(name):
        raise InputError(
            f"--container-name={value}: use letters, digits, '.', '_' and '-'",
            "e.g. --container-name=dev",
        )
    return name, flag


def unshare_list(value: str) -> list[str]:
    items = [v for v in value.split(",") if v]
    for item in items:
        if item not in UNSHARE:
            raise InputError(
                f"--container-unshare={value}: {item!r} is not one of net, ipc, uts",
                "e.g. --container-unshare=net",
            )
    return items


def is_local_image(value: str) -> bool:
    """pyxis: a value starting with ``.`` or ``/`` is an image file on the node."""
    return value.startswith((".", "/"))


def image_reference(image: str) -> str:
    """A pyxis/enroot image reference (not a file) as an hpcbridge ``docker://`` reference."""
    if not image:
        raise InputError("--container-image is empty", "give an image, e.g. ubuntu:24.04")
    if image.startswith(("dockerd://", "podman://")):
        raise InputError(
            f"--container-image={image}: images of a local Docker/Podman daemon cannot "
            "reach the compute nodes",
            "push the image to a registry, or save it (docker save IMAGE -o img.tar) "
            "and give --container-image=./img.tar",
        )
    rest = image[len("docker://") :] if image.startswith("docker://") else image
    if "@" in rest.split("#", 1)[0] and "#" in rest:
        raise InputError(
            f"--container-image={image}: USER@ credentials are an enroot feature",
            "drop USER@ and log in with `apptainer registry login` (or set "
            "APPTAINER_DOCKER_USERNAME/PASSWORD)",
        )
    if "#" in rest:
        registry, _, name = rest.partition("#")
        if not registry or not name:
            raise InputError(
                f"--container-image={image} is not REGISTRY#IMAGE[:TAG]",
                "e.g. nvcr.io#nvidia/pytorch:24.01-py3",
            )
        rest = f"{registry}/{name}"
    return "docker://" + rest


def rewrite_reference(ref: str, rules: tuple[str, ...]) -> str:
    """Apply ``FROM=TO`` prefix rules (the longest ``FROM`` that matches wins) to a
    ``docker://`` reference; rules and the match ignore the ``docker://`` prefix."""
    bare = ref[len("docker://") :] if ref.startswith("docker://") else ref
    best = ""
    target = ""
    for rule in rules:
        old, sep, new = rule.partition("=")
        if not sep or not old or not new:
            raise ConfigError(
                f"convert.rewrite entry {rule!r} is not FROM=TO",
                'e.g. "nvcr.io/=registry.site.example:5000/nvcr.io/"',
            )
        if bare.startswith(old) and len(old) > len(best):
            best, target = old, new
    return "docker://" + target + bare[len(best) :] if best else ref
