"""Publishable bundles: everything needed to reproduce a past submission elsewhere.

``hpcbridge export ID -o bundle/`` writes::

    bundle/bundle.json        manifest: submission, image (ref, manifest digest, SIF sha256,
                              pinned reference), conversion settings, sets, file checksums
    bundle/job.toml           the job file exactly as submitted
    bundle/scripts/job-N.sh   the rendered sbatch script of each chunk (and render's extra files)
    bundle/config.json        the resolved configuration with the source of every value
    bundle/image.def          a definition file that builds the same image with Apptainer
    bundle/README.md          the exact commands to reproduce it

``rerun --from bundle/`` (:func:`rerun_from_bundle`) checks the checksums,
converts the pinned digest with the recorded compression settings, refuses to
go on unless the SIF is byte-identical (same sha256), and submits ``job.toml``
with ``image`` set to the pinned reference.  :func:`bundle_files` is pure; the
rest reads the state store and writes the bundle atomically (a temp directory
renamed into place).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcbridge import __version__
from hpcbridge.errors import ImageError, InputError, StateError
from hpcbridge.images.sif.compression import effective_level, takes_level
from hpcbridge.submit.results import BundleOrigin, Submission
from hpcbridge.tracking.record import Record
from hpcbridge.wrap import pinned_ref

if TYPE_CHECKING:
    from hpcbridge.tracking.session import Session

SCHEMA = 1
MANIFEST = "bundle.json"
_SKIP = {"record.json", "status.json", "job.toml"}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def definition_file(ref: str, digest: str) -> str:
    """An Apptainer definition file building the image of ``ref`` at ``digest``."""
    from hpcbridge.images.refs import ArchiveRef, RegistryRef, SifRef, parse_ref

    parsed = parse_ref(ref)
    head = [
        "# Builds the image of this submission with Apptainer:",
        "#   apptainer build image.sif image.def",
        f"# Image manifest digest: {digest}",
    ]
    if isinstance(parsed, RegistryRef):
        body = ["Bootstrap: docker", f"From: {parsed.name}@{digest}"]
    elif isinstance(parsed, ArchiveRef):
        source = parsed.path + (f":{parsed.tag}" if parsed.tag else "")
        body = [f"Bootstrap: {parsed.kind}", f"From: {source}"]
    elif isinstance(parsed, SifRef):
        body = ["Bootstrap: localimage", f"From: {parsed.path}"]
    else:  # pragma: no cover - parse_ref returns one of the three
        raise InputError(f"cannot write a definition file for {ref!r}")
    return "\n".join(head + body) + "\n"


def _convert_settings(record: Record) -> dict[str, Any]:
    values = (record.config.get("values") or {}).get("convert") or {}
    settings = {
        "compression": values.get("compression", "gzip"),
        "level": int(values.get("level", 9)),
        "platform": values.get("platform", "linux/amd64"),
    }
    if settings["compression"] == "auto" and record.image is not None:
        # "auto" depends on the machine's runtime probe: pin what made this SIF instead
        # (its cache record, beside it), so a rerun elsewhere gives the same bytes.
        try:
            made = json.loads(Path(record.image.sif_path).with_suffix(".json").read_text())
            settings["compression"] = str(made["compression"])
            settings["level"] = int(made.get("level") or 9)
        except (OSError, ValueError, KeyError, TypeError):
            settings["compression"] = "gzip"  # what auto meant before anything was probed
    return settings


def bundle_files(record: Record, extra: Mapping[str, str], exported_at: str) -> dict[str, str]:
    """Every file of the bundle (relative path -> text) from a submission record and the
    text files of its directory (``job-N.sh`` and render's extra files)."""
    image = record.image
    if image is None or not image.digest:
        raise StateError(f"submission {record.id} records no image digest to pin")
    if record.kind == "sbatch":
        raise StateError(
            f"submission {record.id} was made by `hpcbridge sbatch`: it has no job file to export",
            "keep its batch script; `hpcbridge rerun` submits it again here",
        )
    files: dict[str, str] = {"job.toml": record.job.text}
    for name, text in sorted(extra.items()):
        files[f"scripts/{name}"] = text
    files["config.json"] = json.dumps(record.config, indent=1, sort_keys=True) + "\n"
    pinned = pinned_ref(image.ref, image.digest)
    files["image.def"] = definition_file(image.ref, image.digest)
    manifest = {
        "schema": SCHEMA,
        "hpcbridge": __version__,
        "exported_at": exported_at,
        "submission": {
            "id": record.id,
            "name": record.name,
            "kind": record.kind,
            "created_at": record.created_at,
            "user": record.user,
            "host": record.host,
            "cluster": record.cluster,
            "tasks": record.tasks,
            "task_count": record.task_count,
            "job_ids": record.job_ids(),
        },
        "image": {
            "ref": image.ref,
            "digest": image.digest,
            "sif_sha256": image.sif_sha256,
            "pinned_ref": pinned,
        },
        "convert": _convert_settings(record),
        "job": {"file": "job.toml", "sets": list(record.job.sets)},
    }
    files["README.md"] = readme(manifest, sorted(files))
    manifest["files"] = {name: sha256_text(text) for name, text in sorted(files.items())}
    files[MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    return files


def readme(manifest: Mapping[str, Any], names: Sequence[str]) -> str:
    from hpcbridge.render.words import quote_argv

    sub, image, conv = manifest["submission"], manifest["image"], manifest["convert"]
    sets = manifest["job"]["sets"]
    submit = ["hpcbridge", "submit", "job.toml", *(a for s in sets for a in ("--set", s))]
    submit += ["--set", f"image={image['pinned_ref']}"]
    convert = [
        "hpcbridge",
        "convert",
        image["pinned_ref"],
        "--compression",
        conv["compression"],
        *(["--level", str(conv["level"])] if takes_level(conv["compression"]) else []),
    ]
    lines = [
        f"# Reproducing submission {sub['id']} ({sub['name']})",
        "",
        f"Submitted {sub['created_at']} by {sub['user']} on {sub['host']}: "
        f"{sub['task_count']} task(s) ({sub['tasks']}), Slurm job(s) "
        f"{', '.join(str(j) for j in sub['job_ids']) or '-'}.",
        "",
        f"Image: `{image['ref']}`, manifest digest `{image['digest']}`; "
        f"the SIF hpcbridge made from it has sha256 `{image['sif_sha256']}`.",
        "",
        "## With hpcbridge (recommended)",
        "",
        "Put the job's input data where `job.toml` expects it (relative paths are relative to",
        "this directory), then:",
        "",
        "```",
        "hpcbridge rerun --from .",
        "```",
        "",
        "This checks the files against `bundle.json`, converts the pinned digest to a SIF,",
        f"refuses to continue unless its sha256 is `{image['sif_sha256']}`, and submits `job.toml`",
        "with the image pinned. The same steps by hand:",
        "",
        "```",
        quote_argv(convert) + "   # prints the SIF path",
        f"sha256sum <that path>            # expect {image['sif_sha256']}",
        quote_argv(submit),
        "```",
        "",
        "## Without hpcbridge",
        "",
        "`image.def` builds the same image with Apptainer (`apptainer build image.sif image.def`;",
        "a SIF built that way runs the same but is not byte-identical). The scripts in",
        "`scripts/` are what was submitted; they name paths of the original machine (the SIF,",
        "the outcome and log directories) that you would adapt before `sbatch`.",
        "",
        "## Files",
        "",
        *(f"- `{n}`" for n in names if n != "README.md"),
        "- `README.md` (this file), `bundle.json` (manifest with the sha256 of every file)",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ I/O


@dataclass(frozen=True)
class Export:
    """A written bundle: the submission's full id, the directory and its files' texts."""

    id: str
    directory: Path
    files: dict[str, str]

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.files[MANIFEST])
        return data


def export_submission(store_root: Path, sub_ref: str, out: Path) -> Export:
    """Write the bundle of submission ``sub_ref`` to ``out`` (which must not exist or be
    empty)."""
    from hpcbridge.tracking.store import Store, utc_now

    store = Store(store_root)
    sub_id = store.resolve(sub_ref)
    record = store.load(sub_id)
    sub_dir = store.path(sub_id)
    extra: dict[str, str] = {}
    for path in sorted(sub_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in _SKIP:
            try:
                extra[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StateError(f"cannot read {path}: {exc}") from None
    files = bundle_files(record, extra, utc_now())
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not empty", "give a new directory with -o")
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for name, text in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            os.chmod(target, 0o755 if name.endswith(".sh") else 0o644)
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Export(sub_id, out, files)


def read_bundle(bundle: Path) -> dict[str, Any]:
    """The manifest, after checking every listed file against its sha256."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{bundle} is not an hpcbridge bundle (no {MANIFEST})",
            "give the -o directory of export",
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{bundle / MANIFEST} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise InputError(f"{bundle / MANIFEST}: unknown bundle schema", "export it again")
    for name, digest in sorted((manifest.get("files") or {}).items()):
        try:
            text = (bundle / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"bundle file {name} is missing: {exc.strerror}") from None
        if sha256_text(text) != digest:
            raise InputError(
                f"bundle file {name} was changed since export (sha256 differs)",
                "restore it, or submit job.toml with `hpcbridge submit` instead",
            )
    return manifest


def rerun_from_bundle(sess: Session, bundle: Path, *, retries: int = 0) -> Submission:
    """Convert the pinned image (byte-identical SIF or an error), then submit the job."""
    from hpcbridge.images.convert import convert_with_config
    from hpcbridge.submit.actions import submit_job

    bundle = bundle.absolute()
    manifest = read_bundle(bundle)
    image, conv = manifest["image"], manifest["convert"]
    cfg = sess.cfg
    res = convert_with_config(
        image["pinned_ref"],
        cfg,
        backend="native",
        platform=conv.get("platform", "linux/amd64"),
        compression=conv.get("compression", "gzip"),
        level=effective_level(conv.get("compression", "gzip"), int(conv.get("level", 9))),
    )
    if res.digest != image["digest"]:
        raise ImageError(
            f"{image['pinned_ref']} resolved to {res.digest}, not the bundle's {image['digest']}"
        )
    if image.get("sif_sha256") and res.sif_sha256 != image["sif_sha256"]:
        raise ImageError(
            f"the SIF converted here ({res.path}) has sha256 {res.sif_sha256}, "
            f"the bundle's has {image['sif_sha256']}",
            f"the bundle was made by hpcbridge {manifest.get('hpcbridge')}: convert "
            f"{image['pinned_ref']} with --force and --compression {conv.get('compression')} "
            f"--level {conv.get('level')}, with that version",
        )
    sets = [*manifest["job"]["sets"], f"image={image['pinned_ref']}"]
    out = submit_job(
        sess, str(bundle / manifest["job"]["file"]), sets, retries=retries, cwd=str(bundle)
    )
    origin = BundleOrigin(bundle, str(manifest["submission"]["id"]), Path(res.path))
    return dataclasses.replace(out, bundle=origin)
