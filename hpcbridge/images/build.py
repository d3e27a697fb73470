"""Build a SIF from image layers and config: the native conversion backend.

``build_sif`` applies the layers to ``<workdir>/rootfs``, adds the Apptainer
scaffolding, squashes the tree with mksquashfs straight into ``out`` at the
partition offset, then writes the SIF header, descriptors, definition file and
JSON objects in front of it.  Every byte of the result is a function of the
layers' content, ``config``, ``manifest_digest``, ``source_ref``,
``compression`` and ``level``: pass the same ``source_ref`` (it becomes the
definition's ``from:`` line and the base-image labels) to get identical SIFs
from different source forms of one image.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images import sif
from hpcbridge.images.layers import Layer, apply_layers
from hpcbridge.images.scaffold import make_scaffold, write_scaffold
from hpcbridge.images.squash import squash

__all__ = ["Layer", "Progress", "build_sif", "sif_id_for"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages ``extract`` (layers), ``squash`` (0/1), ``sif`` (0/1)."""


def sif_id_for(manifest_digest: str, compression: str, level: int) -> uuid.UUID:
    return sif.deterministic_uuid(manifest_digest, f"{compression}-{level}")


def build_sif(
    layers: Sequence[Layer],
    config: Mapping[str, Any],
    *,
    manifest_digest: str,
    source_ref: str,
    out: Path,
    workdir: Path,
    compression: str = "gzip",
    level: int = 9,
    progress: Optional[Progress] = None,
) -> None:
    """Convert ``layers`` + ``config`` into the SIF file ``out`` (mode 0755).

    ``workdir`` is a private directory on the same filesystem as ``out``; the
    rootfs is extracted under it and removed afterwards.  Raises ImageError.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("config", {}), Mapping):
        raise ImageError("image config is not a JSON object", "the image is malformed")
    if not layers:
        raise ImageError(
            f"image {source_ref} has no layers", "pick an image with a root filesystem"
        )
    os_name = config.get("os", "linux")
    if os_name not in ("linux", "", None):
        raise ImageError(
            f"image {source_ref} is for {os_name!r}, not linux", "use --platform linux/<arch>"
        )
    rootfs = Path(workdir) / "rootfs"
    _rmtree(rootfs)  # left over by a killed run in the same private workdir
    rootfs.mkdir(mode=0o755)
    out = Path(out)
    try:
        apply_layers(layers, str(rootfs), progress=progress)
        sc = make_scaffold(config, source_ref=source_ref, manifest_digest=manifest_digest)
        write_scaffold(str(rootfs), sc.entries)
        os.chmod(rootfs, 0o755)
        objects = [
            sif.SmallObject(sif.DATA_DEFFILE, "", sc.deffile.encode()),
            sif.SmallObject(
                sif.DATA_GENERIC_JSON, "inspect-metadata.json", sc.inspect_json.encode()
            ),
            sif.SmallObject(sif.DATA_GENERIC_JSON, "oci-config.json", sc.oci_config_json.encode()),
        ]
        arch = str(config.get("architecture") or "amd64")
        sif_id = sif_id_for(manifest_digest, compression, level)
        layout = sif.plan(objects, partition_size=0, arch=arch, sif_id=sif_id, created=sc.created)
        if progress is not None:
            progress("squash", 0, 1)
        if out.exists() or out.is_symlink():
            out.unlink()
        size = squash(
            rootfs,
            out,
            offset=layout.partition_offset,
            created=sc.created,
            compression=compression,
            level=level,
        )
        if progress is not None:
            progress("squash", 1, 1)
        final = sif.plan(
            objects,
            partition_size=size,
            arch=arch,
            sif_id=sif_id,
            created=sc.created,
            partition_offset=layout.partition_offset,
        )
        with open(out, "r+b") as f:
            sif.write_prefix(f, final)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(out, 0o755)
        if progress is not None:
            progress("sif", 1, 1)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            out.unlink()  # never leave a partial SIF behind
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ImageError(
                f"no space left while building {out}",
                "free space there or set cache.tmp_dir to a larger filesystem",
            ) from exc
        raise
    finally:
        _rmtree(rootfs)


def _rmtree(path: Path) -> None:
    def onerror(func: Any, p: str, exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    if path.exists():
        shutil.rmtree(path, onerror=onerror)
