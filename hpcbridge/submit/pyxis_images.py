"""The images of a pyxis-style job, converted (or previewed) on the login node.

Each ``--container-image`` value found at submit time becomes one SIF in the
cache before the job is submitted, so no compute node talks to a registry:

* ``REGISTRY#IMAGE:TAG``, ``IMAGE:TAG``, ``docker://...`` -> ``docker://`` reference
  (after the site's ``convert.rewrite`` rules), converted as ``hpcbridge convert`` does;
* a file (a value starting with ``.`` or ``/``, as pyxis reads it), by its content:
  an enroot squashfs -> :mod:`hpcbridge.images.sif.from_squashfs`; a SIF -> used as
  it is; a ``docker save``/OCI tarball -> ``docker-archive:``/``oci-archive:``.

With ``--dry-run`` nothing is converted and no layer is fetched: references are
previewed (:mod:`hpcbridge.images.preview`: the cache, else the manifest and
config only; unreachable -> marked unresolved), files are looked up by hash.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

from hpcbridge.errors import InputError
from hpcbridge.pyxis.shim import ShimImage, shim_key
from hpcbridge.pyxis.steps import ImageUse
from hpcbridge.pyxis.values import image_reference, is_local_image, rewrite_reference
from hpcbridge.render.context import PyxisImage

if TYPE_CHECKING:
    from hpcbridge.config import Config


class Planned(NamedTuple):
    shown: PyxisImage  # for the script's header
    shim: ShimImage  # for the run-time shim's table
    sif_sha256: str  # "" unknown (dry run, a SIF used as it is)


def file_kind(path: Path) -> str:
    """``squashfs``, ``sif``, ``docker-archive``, ``oci-archive`` or ``unknown``."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"hsqs", b"sqsh"):
        return "squashfs"
    if head[32:41] == b"SIF_MAGIC":
        return "sif"
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        return "docker-archive"
    if head[257:262] == b"ustar":
        with tarfile.open(path) as tar:
            names = {n.lstrip("./") for n in tar.getnames()}
        return "oci-archive" if "oci-layout" in names else "docker-archive"
    return "unknown"


def plan_images(
    uses: Sequence[ImageUse], cfg: Config, *, dry_run: bool, saves: Sequence[str] = ()
) -> tuple[list[Planned], list[str]]:
    """Every used image, converted (previewed with ``dry_run``); and notes."""
    out: list[Planned] = []
    notes: list[str] = []
    for use in uses:
        key = shim_key(use.value, use.cwd)
        if any(p.shim.key == key for p in out):
            continue
        if is_local_image(use.value):
            planned = _local(use, key, cfg, dry_run, saves, notes)
        else:
            planned = _reference(use, key, cfg, dry_run)
        if planned is not None:
            out.append(planned)
    return out, notes


def _where(use: ImageUse) -> str:
    return f"script line {use.line}: " if use.line else ""


def _reference(use: ImageUse, key: str, cfg: Config, dry_run: bool) -> Planned:
    try:
        ref = rewrite_reference(image_reference(use.value), cfg.convert.rewrite)
    except InputError as exc:
        raise InputError(_where(use) + exc.message, exc.hint) from None
    if dry_run:
        from hpcbridge.images.preview import preview_image

        seen = preview_image(ref, cfg)
        sif = str(seen.sif_path) if seen.sif_path else ""
        if seen.unresolved:
            note = f"UNRESOLVED: {seen.unresolved}; hpcbridge sbatch converts it before submitting"
        else:
            note = (
                "" if sif else "not converted yet: hpcbridge sbatch converts it before submitting"
            )
        return Planned(
            PyxisImage(use.value, ref, seen.digest or "", sif, note),
            ShimImage(key, sif, seen.workdir or "", ""),
            seen.sif_sha256 or "",
        )
    from hpcbridge.submit.submitter import resolve_image

    got = resolve_image(ref, cfg)
    return Planned(
        PyxisImage(use.value, ref, got.digest, got.sif_path, ""),
        ShimImage(key, got.sif_path, got.workdir or "", ""),
        got.sif_sha256,
    )


def _local(
    use: ImageUse, key: str, cfg: Config, dry_run: bool, saves: Sequence[str], notes: list[str]
) -> Optional[Planned]:
    path = Path(key)
    if not path.is_file() and not use.line:
        raise InputError(
            f"--container-image={use.value}: {key} does not exist",
            "check the path of the image file",
        )
    if not path.is_file():
        made = "written by --container-save in this script" if key in saves else "not there now"
        notes.append(
            f"{_where(use)}--container-image={use.value}: {key} is {made}; "
            "the step runs the file as it is then"
        )
        return None
    kind = file_kind(path)
    st = path.stat()
    stamp = f"{st.st_size}:{int(st.st_mtime)}"
    if kind == "squashfs":
        return _squashfs(use, key, path, cfg, dry_run, stamp)
    if kind == "sif":
        return Planned(
            PyxisImage(use.value, key, "", key, "a SIF file, used as it is"),
            ShimImage(key, key, "", stamp),
            "",
        )
    if kind == "unknown":
        raise InputError(
            f"{_where(use)}--container-image={use.value}: {key} is not an image file",
            "give an enroot squashfs (.sqsh), a SIF, or a `docker save` tarball",
        )
    ref = f"{kind}:{key}"
    if dry_run:
        return Planned(
            PyxisImage(use.value, ref, "", "", "not converted yet"), ShimImage(key, "", "", ""), ""
        )
    from hpcbridge.submit.submitter import resolve_image

    got = resolve_image(ref, cfg)
    return Planned(
        PyxisImage(use.value, ref, got.digest, got.sif_path, ""),
        ShimImage(key, got.sif_path, got.workdir or "", stamp),
        got.sif_sha256,
    )


def _squashfs(
    use: ImageUse, key: str, path: Path, cfg: Config, dry_run: bool, stamp: str
) -> Planned:
    from hpcbridge.images.cache import Cache
    from hpcbridge.images.sif.from_squashfs import convert_squashfs, squashfs_digest

    cache = Cache(
        cfg.cache.dir, tmp_dir=cfg.cache.tmp_dir, shared=cfg.cache.shared, group=cfg.cache.group
    )
    source = f"enroot-squashfs:{key}"
    if dry_run:
        digest = squashfs_digest(path, cache)
        found = cache.lookup(digest, touch=False)
        workdir = str(cache.read_record(digest).get("workdir") or "") if found else ""
        note = "an enroot squashfs" + ("" if found else "; not converted yet")
        return Planned(
            PyxisImage(use.value, source, digest, str(found or ""), note),
            ShimImage(key, str(found or ""), workdir, stamp),
            "",
        )
    arch = cfg.convert.platform.split("/")[1] if "/" in cfg.convert.platform else "amd64"
    digest, sif, record, _ = convert_squashfs(path, cache, arch=arch)
    note = "an enroot squashfs, as a SIF (environment: /etc/environment, entrypoint: /etc/rc)"
    return Planned(
        PyxisImage(use.value, source, digest, str(sif), note),
        ShimImage(key, str(sif), str(record.get("workdir") or ""), stamp),
        str(record.get("sif_sha256") or ""),
    )


def whole_use(value: str, cwd: str) -> ImageUse:
    return ImageUse(value, os.path.normpath(cwd), 0)
