"""Values of pyxis options: ``--container-mounts`` and ``--container-image`` (pure).

Grammar from pyxis v0.24 ``args.c`` and enroot's image URI parser; what Apptainer
cannot do is refused with the alternative (see docs/jobs.md).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from hpcbridge.errors import InputError

#: mount flags hpcbridge honours or may ignore (Apptainer binds are already private, nosuid)
_MOUNT_FLAGS_OK = {"ro", "rw", "rbind", "bind", "nosuid", "nodev", "private", "rprivate"}
_MOUNT_FLAGS_IGNORED_PREFIX = ("x-create=",)


@dataclass(frozen=True)
class Mount:
    src: str
    dst: str
    readonly: bool = False


def parse_mounts(value: str, cwd: str) -> list[Mount]:
    """``SRC:DST[:FLAGS][,...]`` the way pyxis reads it (see docs/jobs.md)."""
    out: list[Mount] = []
    for item in value.split(","):
        if not item:
            raise InputError(
                f"--container-mounts={value!r} has an empty entry", "remove the extra comma"
            )
        src, sep, rest = item.partition(":")
        dst, _, flags_text = rest.partition(":") if sep else (src, "", "")
        if not src or not dst:
            raise InputError(
                f"--container-mounts entry {item!r}: invalid format", "write SRC:DST[:FLAGS]"
            )
        if src in ("tmpfs", "umount"):
            raise InputError(
                f"--container-mounts entry {item!r}: {src} mounts are not supported",
                "bind a host directory instead (e.g. a job-local scratch directory)",
            )
        if not src.startswith((".", "/")):
            raise InputError(
                f'--container-mounts entry {item!r}: mount source must be a relative path, an absolute path, "tmpfs" or "umount"',
                "write ./dir or /abs/dir",
            )
        if not dst.startswith((".", "/")):
            raise InputError(
                f"--container-mounts entry {item!r}: mount target must be a relative path or an absolute path",
                "write /dir (relative targets are relative to the container root)",
            )
        readonly = False
        for flag in flags_text.replace("+", ",").split(",") if flags_text else []:
            if flag == "ro":
                readonly = True
            elif flag in _MOUNT_FLAGS_OK or flag.startswith(_MOUNT_FLAGS_IGNORED_PREFIX):
                continue
            else:
                raise InputError(
                    f"--container-mounts entry {item!r}: flag {flag!r} is not supported",
                    "use ro or rw (Apptainer binds are already private and nosuid)",
                )
        host = os.path.normpath(os.path.join(cwd, src))
        target = posixpath.normpath(dst if dst.startswith("/") else "/" + dst)
        mount = Mount(host, target, readonly)
        if mount not in out:
            out.append(mount)
    return out


def image_reference(image: str) -> str:
    """A pyxis/enroot image value as an hpcbridge image reference."""
    if not image:
        raise InputError("--container-image is empty", "give an image, e.g. ubuntu:24.04")
    if image.startswith((".", "/")):
        if image.endswith(".sif"):
            return image
        raise InputError(
            f"--container-image={image}: enroot squashfs files are not supported",
            "give the original image reference or a .sif file",
        )
    if image.startswith("dockerd://") or image.startswith("podman://"):
        raise InputError(
            f"--container-image={image}: local daemon images are not supported",
            "save it to an archive and use docker-archive:FILE, or push it to a registry",
        )
    rest = image[len("docker://") :] if image.startswith("docker://") else image
    if "@" in rest.split("#", 1)[0] and "#" in rest:
        raise InputError(
            f"--container-image={image}: USER@ credentials are an enroot feature",
            "log in with `apptainer registry login` or set APPTAINER_DOCKER_USERNAME/PASSWORD",
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
