"""An enroot squashfs image (``*.sqsh``) becomes a cached SIF without being unpacked.

An enroot image *is* a root filesystem (enroot-and-overlays.md): only the
Apptainer scaffold (``/.singularity.d``: environment scripts from
``/etc/environment``, a runscript from ``/etc/rc``'s entrypoint, labels) and the
SIF's metadata objects are missing.  The squashfs is copied once, byte for
byte, to the partition offset of the new SIF; ``mksquashfs SCAFFOLD SIF -offset N``
appends the scaffold to it (append mode rewrites the metadata tables only, the
file data stays; compression and block size are the image's own: enroot's lzo
with uncompressed data blocks runs as it is); the SIF header, descriptors and
objects are written in front (sif/format.py).  A squashfs that already carries
``/.singularity.d`` (one hpcbridge's ``--container-save`` wrote) is only wrapped.

The cache key is ``sha256:<sha256 of the file>``, so a file converted once is a
hit wherever it is copied to, and ``--container-save=x.sqsh`` then
``--container-image=x.sqsh`` round-trip.  The hash of a path is remembered for
its size and modification time, so a warm lookup does not re-read the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional

from hpcbridge import runner
from hpcbridge.errors import CommandError, ImageError
from hpcbridge.images.cache import Cache, file_sha256, temp_name
from hpcbridge.images.sif import format as sif
from hpcbridge.images.sif.enroot import EnrootImage, parse_environment, parse_rc
from hpcbridge.images.sif.scaffold import make_scaffold, write_scaffold
from hpcbridge.images.sif.squash import SQUASHFS_MAGIC, find_mksquashfs, squashfs_size

SOURCE_PREFIX = "enroot-squashfs:"
_SCAFFOLD_DIR = ".singularity.d"


class SquashfsSif(NamedTuple):
    digest: str  # sha256:<hex of the squashfs file>
    path: Path  # the cached SIF
    record: dict[str, Any]  # its cache record (workdir, labels, sif_sha256 ...)
    cached: bool  # no conversion ran in this call


def is_squashfs(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == SQUASHFS_MAGIC
    except OSError:
        return False


def _unsquashfs() -> str:
    exe = runner.which("unsquashfs")
    if exe is None:
        raise ImageError(
            "unsquashfs not found: it reads enroot images", "install squashfs-tools (>= 4.5)"
        )
    return exe


def top_level(path: Path) -> set[str]:
    """Names in the image's root directory (``unsquashfs -l -max-depth 1``)."""
    done = runner.run([_unsquashfs(), "-l", "-max-depth", "1", "-d", "", str(path)], check=False)
    if done.returncode != 0:
        raise ImageError(
            f"{path} is not a readable squashfs: {done.stderr.strip().splitlines()[-1:] or ''}",
            "give an image made by enroot import/export or mksquashfs",
        )
    return {line.strip().lstrip("/") for line in done.stdout.splitlines() if line.strip("/ ")}


def read_file(path: Path, inner: str) -> Optional[str]:
    """A file of the image (``unsquashfs -cat``), None when it is not there."""
    done = runner.run([_unsquashfs(), "-cat", str(path), inner], check=False)
    if done.returncode != 0:
        return None
    return done.stdout


def read_image(path: Path) -> tuple[EnrootImage, set[str]]:
    """The enroot facts of ``path`` and its top-level names."""
    names = top_level(path)
    rc = read_file(path, "etc/rc") if "etc" in names else None
    image = parse_rc(rc) if rc else EnrootImage()
    env = read_file(path, "etc/environment") if "etc" in names else None
    if env:
        image = EnrootImage(
            parse_environment(env),
            image.workdir,
            image.entrypoint,
            image.cmd,
            image.labels,
            image.provenance,
        )
    return image, names


def build_sif(src: Path, out: Path, scratch: Path, *, digest: str, arch: str) -> EnrootImage:
    """Write the SIF of the squashfs ``src`` to ``out`` (see the module docstring)."""
    image, names = read_image(src)
    source = SOURCE_PREFIX + str(src)
    config = {**image.oci_config(), "architecture": arch}
    sc = make_scaffold(config, source_ref=source, manifest_digest=digest)
    objects = [
        sif.SmallObject(sif.DATA_DEFFILE, "", sc.deffile.encode()),
        sif.SmallObject(sif.DATA_GENERIC_JSON, "inspect-metadata.json", sc.inspect_json.encode()),
        sif.SmallObject(sif.DATA_GENERIC_JSON, "oci-config.json", sc.oci_config_json.encode()),
    ]
    sif_id = sif.deterministic_uuid(digest, "enroot")
    layout = sif.plan(objects, partition_size=0, arch=arch, sif_id=sif_id, created=sc.created)
    offset = layout.partition_offset
    with open(src, "rb") as fin, open(out, "wb") as fout:
        fout.truncate(offset)
        fout.seek(offset)
        shutil.copyfileobj(fin, fout, 8 << 20)
    if _SCAFFOLD_DIR not in names:
        tree = scratch / "scaffold"
        tree.mkdir(mode=0o755)
        entries = [e for e in sc.entries if e.path.strip("/").split("/")[0] not in names]
        write_scaffold(str(tree), entries, sc.created)
        argv = [find_mksquashfs(), str(tree), str(out), "-offset", str(offset)]
        argv += ["-all-root", "-no-recovery", "-quiet", "-no-progress", "-no-xattrs"]
        try:
            runner.run(argv, extra_env={"SOURCE_DATE_EPOCH": str(max(sc.created, 0))})
        except CommandError as exc:
            raise ImageError(
                f"mksquashfs could not add the Apptainer files to {src}: {exc.message}",
                "check that squashfs-tools supports the image's compression (enroot: lzo)",
            ) from exc
    size = squashfs_size(out, offset)
    final = sif.plan(
        objects,
        partition_size=size,
        arch=arch,
        sif_id=sif_id,
        created=sc.created,
        partition_offset=offset,
    )
    with open(out, "r+b") as fh:
        sif.write_prefix(fh, final)
    os.chmod(out, 0o755)
    return image


def squashfs_digest(path: Path, cache: Cache) -> str:
    """``sha256:<hex>`` of the file, remembered per path, size and mtime."""
    st = path.stat()
    key = f"squashfs:{path}:{st.st_size}:{st.st_mtime_ns}"
    known = cache.load_resolution(key)
    if known:
        return str(known["digest"])
    digest = "sha256:" + file_sha256(path)
    if cache.refs_dir.is_dir():
        cache.save_resolution(key, digest, ref=str(path))
    return digest


def is_enroot_image(path: Path) -> bool:
    """A readable squashfs without Apptainer's scaffold (an enroot image, not a
    Singularity one); anything else is left to Apptainer as it is."""
    if not is_squashfs(path):
        return False
    try:
        return _SCAFFOLD_DIR not in top_level(path)
    except ImageError:
        return False


def convert_squashfs(path: Path, cache: Cache, *, arch: str = "amd64") -> SquashfsSif:
    """The cached SIF of an enroot squashfs (see the module docstring)."""
    path = path.resolve()
    cache.ensure()
    digest = squashfs_digest(path, cache)
    source = SOURCE_PREFIX + str(path)
    found = cache.lookup(digest)
    if found is not None:
        return SquashfsSif(digest, found, cache.ensure_record(digest, source_ref=source), True)
    lock = cache.lock(digest)
    try:
        lock.acquire(done=lambda: cache.lookup(digest, touch=False) is not None)
        found = cache.lookup(digest)
        if found is not None:
            return SquashfsSif(digest, found, cache.ensure_record(digest, source_ref=source), True)
        return SquashfsSif(digest, *_publish(path, cache, digest, arch), False)
    finally:
        lock.release()


def _publish(path: Path, cache: Cache, digest: str, arch: str) -> tuple[Path, dict[str, Any]]:
    part = cache.sif_dir / temp_name(Path(cache.sif_path(digest)).name)
    scratch = cache.tmp_dir / temp_name("enroot")
    started = time.time()
    try:
        scratch.mkdir(mode=0o700)
        image = build_sif(path, part, scratch, digest=digest, arch=arch)
        sha = file_sha256(part)
        cache.publish_mode(part, 0o755)
        final = cache.sif_path(digest)
        os.replace(part, final)
        record = {
            "digest": digest,
            "sif": final.name,
            "size": final.stat().st_size,
            "sif_sha256": sha,
            "source_ref": SOURCE_PREFIX + str(path),
            "refs": [SOURCE_PREFIX + str(path)],
            "backend": "enroot-squashfs",
            "workdir": image.workdir or None,
            "labels": image.labels,
            "created": time.time(),
            "seconds": round(time.time() - started, 3),
        }
        cache.write_record(digest, record)
        return final, record
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        shutil.rmtree(scratch, ignore_errors=True)
