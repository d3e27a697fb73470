"""Build a SIF from image layers and config: the native conversion backend.

``build_sif`` flattens the layers (confined, OCI whiteouts; layers/apply.py),
adds the Apptainer scaffolding (scaffold.py), squashes the tree with mksquashfs
straight into ``out`` at the partition offset, then writes the SIF header,
descriptors, definition file and JSON objects in front of it (format.py).  By
default the tree is flattened in memory and streamed to ``mksquashfs -tar``
(layers/tar.py), so no root filesystem is ever written to disk and reading the
layers overlaps with compression; with squashfs-tools < 4.5 a rootfs is
extracted under ``workdir`` and squashed.  Every byte of the result is a
function of the layers' content, ``config``, ``manifest_digest``,
``source_ref``, ``compression``, ``level`` and the mksquashfs version: pass the
same ``source_ref`` (it becomes the definition's ``from:`` line and labels) to
get identical SIFs from different source forms of one image (mksquashfs's
``-processors`` and ``-mem`` change its speed and memory, not its bytes).  Each
layer's ``open()`` is called twice in a streaming build: once to plan, once to
stream the data (layers/decoded.py); the memory used does not grow with the
image's size, only (a little) with its number of files.
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
from hpcbridge.images.layers.apply import apply_layers
from hpcbridge.images.layers.decoded import DecodedLayers
from hpcbridge.images.layers.tar import StreamPlan, plan_stream, write_stream
from hpcbridge.images.layers.tree import MemFS
from hpcbridge.images.progress import Reporter
from hpcbridge.images.protocols import Layer
from hpcbridge.images.sif import format as sif
from hpcbridge.images.sif.compression import DEFAULT_LEVEL, effective_level
from hpcbridge.images.sif.scaffold import Scaffold, make_scaffold, write_scaffold
from hpcbridge.images.sif.squash import find_mksquashfs, squash, squash_stream, supports_tar

__all__ = ["Progress", "build_mode", "build_sif", "sif_id_for"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: see :mod:`hpcbridge.images.progress`."""

#: ``squasher(out, offset)`` writes the squashfs at ``offset`` of ``out``; returns its size.
Squasher = Callable[[Path, int], int]


def sif_id_for(manifest_digest: str, compression: str, level: Optional[int]) -> uuid.UUID:
    """The SIF id, derived from ``<compression>-<level>`` (``-9`` for compressors without one)."""
    chosen = effective_level(compression, level)
    tag = f"{compression}-{DEFAULT_LEVEL if chosen is None else chosen}"
    return sif.deterministic_uuid(manifest_digest, tag)


def build_mode() -> str:
    """``stream`` when the installed mksquashfs reads tar streams (>= 4.5), else ``dir``."""
    return "stream" if supports_tar(find_mksquashfs()) else "dir"


def build_sif(
    layers: Sequence[Layer],
    config: Mapping[str, Any],
    *,
    manifest_digest: str,
    source_ref: str,
    out: Path,
    workdir: Path,
    compression: str = "gzip",
    level: Optional[int] = None,
    processors: Optional[int] = None,
    mem_mib: Optional[int] = None,
    progress: Optional[Progress] = None,
    mode: str = "auto",
) -> None:
    """Convert ``layers`` + ``config`` into the SIF file ``out`` (mode 0755).

    ``workdir`` is a private directory on the same filesystem as ``out``.
    ``mode``: ``stream`` flattens the layers in memory and streams the tree to
    ``mksquashfs -tar`` (nothing but the SIF is written; needs squashfs-tools
    >= 4.5); ``dir`` extracts a rootfs under ``workdir`` and squashes it;
    ``auto`` picks ``stream`` when mksquashfs supports it.  The two modes give
    the same tree but not the same bytes.  ``level`` None: the default level;
    ``processors``/``mem_mib``: mksquashfs's ``-processors`` and ``-mem`` (None:
    its own defaults).  Raises ImageError.
    """
    _check_image(config, layers, source_ref, mode)
    if mode == "auto":
        mode = build_mode()
    rootfs = Path(workdir) / "rootfs"
    _rmtree(rootfs)  # left over by a killed run in the same private workdir
    out = Path(out)
    stack = contextlib.ExitStack()
    try:
        sc = make_scaffold(config, source_ref=source_ref, manifest_digest=manifest_digest)
        squash_args: dict[str, Any] = {
            "compression": compression,
            "level": level,
            "processors": processors,
            "mem_mib": mem_mib,
        }
        report = Reporter(progress)
        if mode == "stream":
            squasher = _flatten_in_memory(layers, sc, stack, report, squash_args)
        else:
            squasher = _flatten_on_disk(layers, sc, rootfs, progress, squash_args)
        arch = str(config.get("architecture") or "amd64")
        sif_id = sif_id_for(manifest_digest, compression, level)
        _write_sif(out, sc, squasher, arch=arch, sif_id=sif_id, report=report)
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
        stack.close()  # stops the layers' decompressing threads
        _rmtree(rootfs)


def _check_image(
    config: Mapping[str, Any], layers: Sequence[Layer], source_ref: str, mode: str
) -> None:
    if mode not in ("auto", "stream", "dir"):
        raise ValueError(f"unknown build mode {mode!r}")
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


def _flatten_in_memory(
    layers: Sequence[Layer],
    sc: Scaffold,
    stack: contextlib.ExitStack,
    report: Reporter,
    squash_args: dict[str, Any],
) -> Squasher:
    """Apply the layers to an in-memory tree; squashing streams it to ``mksquashfs -tar``."""

    def unpacked(index: int, n: int) -> None:
        report.layer_bytes("unpack", index, layers[index].digest, n, 0)

    decoded = stack.enter_context(DecodedLayers(layers, on_bytes=unpacked if report else None))
    plan = _plan(layers, sc, decoded, report)
    total = plan.data_bytes()
    per_layer = {li: plan.data_bytes(li) for li in plan.members}
    fed = [0]

    def on_data(index: int, n: int) -> None:
        fed[0] += n
        if index >= 0:
            report.layer_bytes("stream", index, layers[index].digest, n, per_layer[index])
        report.stage("squash", fed[0], total)

    def squasher(out: Path, offset: int) -> int:
        return squash_stream(
            lambda pipe: write_stream(
                pipe,
                plan,
                layers,
                dir_mtime=sc.created,
                open_stream=decoded.second,
                on_data=on_data if report else None,
            ),
            out,
            offset=offset,
            created=sc.created,
            **squash_args,
        )

    return squasher


def _plan(
    layers: Sequence[Layer], sc: Scaffold, decoded: DecodedLayers, report: Reporter
) -> StreamPlan:
    """The first pass: the final tree, kept only as the stream plan (the tree itself is freed)."""
    tree = MemFS()
    progress = report.stage if report else None
    writer = apply_layers(layers, tree, progress=progress, open_headers=decoded.first)
    write_scaffold(writer, sc.entries, sc.created)
    return plan_stream(tree)


def _flatten_on_disk(
    layers: Sequence[Layer],
    sc: Scaffold,
    rootfs: Path,
    progress: Optional[Progress],
    squash_args: dict[str, Any],
) -> Squasher:
    """Extract the layers into ``rootfs``; squashing reads that directory."""
    rootfs.mkdir(mode=0o755)
    apply_layers(layers, str(rootfs), progress=progress)
    write_scaffold(str(rootfs), sc.entries, sc.created)
    os.chmod(rootfs, 0o755)

    def squasher(out: Path, offset: int) -> int:
        return squash(rootfs, out, offset=offset, created=sc.created, **squash_args)

    return squasher


def _write_sif(
    out: Path,
    sc: Scaffold,
    squasher: Squasher,
    *,
    arch: str,
    sif_id: uuid.UUID,
    report: Reporter,
) -> None:
    """Squash at the partition offset, then write header, descriptors and objects before it."""
    objects = [
        sif.SmallObject(sif.DATA_DEFFILE, "", sc.deffile.encode()),
        sif.SmallObject(sif.DATA_GENERIC_JSON, "inspect-metadata.json", sc.inspect_json.encode()),
        sif.SmallObject(sif.DATA_GENERIC_JSON, "oci-config.json", sc.oci_config_json.encode()),
    ]
    layout = sif.plan(objects, partition_size=0, arch=arch, sif_id=sif_id, created=sc.created)
    report.stage("squash", 0, 1)
    if out.exists() or out.is_symlink():
        out.unlink()
    size = squasher(out, layout.partition_offset)
    report.stage("squash", 1, 1)
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
    report.stage("sif", 1, 1)


def _rmtree(path: Path) -> None:
    def onerror(func: Any, p: str, exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    if path.exists():
        shutil.rmtree(path, onerror=onerror)
