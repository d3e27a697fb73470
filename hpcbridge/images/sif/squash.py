"""Squash the image tree with ``mksquashfs`` straight into a SIF at its offset.

Verified with squashfs-tools 4.5.1: ``-offset N`` (alias ``-o``) writes the
filesystem from byte N of the output; the output is created/truncated and the
first N bytes are left as a hole of zeros, which the SIF header, descriptors
and small objects fill afterwards, so the squashfs is written once, in place.
``-reproducible`` is the default; ``SOURCE_DATE_EPOCH`` sets the superblock
time and clamps every later file time (so directories and the scaffold get the
image's ``created`` time while file times from the layers are kept, which
Python's ``.pyc`` checks rely on); ``-all-root`` gives every file uid/gid 0
(the image runs as the calling user anyway).  Extended attributes are not
stored (``-no-xattrs``): a non-root extraction cannot carry the image's xattrs
faithfully and the host's would make the output depend on the machine.
``-tar`` (4.5+) reads the tree as a tar stream from stdin: it makes the root
directory 0777 unless ``-root-mode`` is given, and strips the leading ``/`` of
PAX ``linkpath`` values (GNU long-link headers are fine; see layers/tar.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import struct
import threading
from pathlib import Path
from typing import IO, Callable, Optional

from hpcbridge import runner
from hpcbridge.errors import CommandError, EnvironmentProblem, ImageError
from hpcbridge.images.sif.compression import mksquashfs_args

SQUASHFS_MAGIC = b"hsqs"
#: mksquashfs's ``-mem`` (MiB) when the configuration sets none (``convert.mksquashfs_mem``).
#: Without it mksquashfs takes a quarter of the machine's RAM for its caches.
DEFAULT_MEM_MIB = 256


def default_processors() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a login node's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def mksquashfs_argv(
    rootfs: str,
    out: str,
    *,
    offset: int,
    compression: str = "gzip",
    level: Optional[int] = None,
    processors: Optional[int] = None,
    mem_mib: Optional[int] = None,
    exe: str = "mksquashfs",
    tar: bool = False,
) -> list[str]:
    """argv of the mksquashfs run (pure); with ``tar`` it reads a tar stream from stdin.

    ``level`` None: the default level, if the compressor takes one (:mod:`.compression`).
    ``processors``/``mem_mib`` None: mksquashfs's own defaults (all CPUs, RAM/4).
    """
    argv = [exe, "-" if tar else rootfs, out]
    if tar:
        argv += ["-tar", "-root-mode", "755"]
    argv += ["-offset", str(offset), "-noappend", *mksquashfs_args(compression, level)]
    argv += ["-all-root", "-no-xattrs", "-no-progress", "-quiet"]
    if processors:
        argv += ["-processors", str(processors)]
    if mem_mib:
        argv += ["-mem", f"{mem_mib}M"]
    return argv


_VERSION = re.compile(r"mksquashfs version (\d+)\.(\d+)")


def parse_version(text: str) -> Optional[tuple[int, int]]:
    """``(major, minor)`` from ``mksquashfs -version`` output."""
    m = _VERSION.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.lru_cache(maxsize=4)
def supports_tar(exe: str) -> bool:
    """Whether this mksquashfs reads tar streams (``-tar``, squashfs-tools >= 4.5)."""
    done = runner.run([exe, "-version"], check=False)
    version = parse_version(done.stdout + done.stderr)
    return version is not None and version >= (4, 5)


def find_mksquashfs() -> str:
    exe = runner.which("mksquashfs") or runner.which(
        "mksquashfs", "/usr/sbin:/sbin:/usr/local/sbin"
    )
    if exe is None:
        raise EnvironmentProblem(
            "mksquashfs is not installed", "install squashfs-tools (apt/dnf install squashfs-tools)"
        )
    return exe


def squash_stream(
    feed: Callable[[IO[bytes]], None],
    out: Path,
    *,
    offset: int,
    created: int,
    compression: str = "gzip",
    level: Optional[int] = None,
    processors: Optional[int] = None,
    mem_mib: Optional[int] = None,
) -> int:
    """Run ``mksquashfs - OUT -tar``, let ``feed`` write the tar stream; the squashfs size."""
    exe = find_mksquashfs()
    argv = mksquashfs_argv(
        "-",
        str(out),
        offset=offset,
        compression=compression,
        level=level,
        processors=processors,
        mem_mib=mem_mib,
        exe=exe,
        tar=True,
    )
    proc = runner.spawn(
        argv,
        stdin_pipe=True,
        stderr_pipe=True,
        extra_env={"SOURCE_DATE_EPOCH": str(max(created, 0))},
    )
    errors: list[bytes] = []

    def drain() -> None:
        if proc.stderr is not None:
            errors.append(proc.stderr.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert proc.stdin is not None
    broken = False
    try:
        feed(proc.stdin)
    except BrokenPipeError:
        broken = True
    except BaseException:
        proc.kill()
        proc.wait(check=False)
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    code = proc.wait(check=False)
    reader.join(timeout=30)
    if code != 0 or broken:
        lines = b"".join(errors).decode(errors="replace").strip().splitlines()
        raise ImageError(
            f"mksquashfs failed (status {code}): {lines[-1] if lines else 'no message'}",
            "check free space in the cache's temp directory",
        )
    return squashfs_size(out, offset)


def squash(
    rootfs: Path,
    out: Path,
    *,
    offset: int,
    created: int,
    compression: str = "gzip",
    level: Optional[int] = None,
    processors: Optional[int] = None,
    mem_mib: Optional[int] = None,
) -> int:
    """Run mksquashfs writing at ``offset`` of ``out``; return the squashfs size in bytes."""
    exe = find_mksquashfs()
    argv = mksquashfs_argv(
        str(rootfs),
        str(out),
        offset=offset,
        compression=compression,
        level=level,
        processors=processors,
        mem_mib=mem_mib,
        exe=exe,
    )
    try:
        runner.run(argv, extra_env={"SOURCE_DATE_EPOCH": str(max(created, 0))})
    except CommandError as exc:
        raise ImageError(
            f"mksquashfs failed: {exc.message}",
            "check free space in the cache's temp directory",
        ) from exc
    return squashfs_size(out, offset)


def squashfs_size(path: Path, offset: int) -> int:
    """Size of the squashfs at ``offset`` of ``path`` (to the end of the file, i.e. with padding)."""
    with open(path, "rb") as f:
        f.seek(offset)
        sb = f.read(96)
        end = os.fstat(f.fileno()).st_size
    if len(sb) < 48 or sb[:4] != SQUASHFS_MAGIC:
        raise ImageError(
            "mksquashfs did not write a squashfs superblock", "check the mksquashfs version"
        )
    bytes_used = struct.unpack_from("<q", sb, 40)[0]
    if bytes_used > end - offset:
        raise ImageError("squashfs is truncated", "check free space in the cache's temp directory")
    return end - offset
