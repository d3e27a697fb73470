"""Preview an image without converting it: its digest, image config and cached SIF.

``render``, ``submit --dry-run`` and ``sbatch --dry-run`` show the script a job
would run without converting anything.  :func:`preview_image` answers from what
the cache already knows first (a converted SIF and its record, the metadata of
an earlier preview, a remembered tag resolution); otherwise it asks the
registry for the manifest and the image config only, a few kilobytes, and
remembers them in ``<cache>/meta/<hex>.json``.  It never downloads a layer.

Offline (``offline=True``) or with the registry unreachable (one attempt, no
backoff), a reference the cache knows nothing about comes back ``unresolved``
with the reason, at once; a registry that answers "no such image" or "denied"
is an error, as it would be for ``convert``.  Local forms (``oci:``,
``docker-archive:``, ``oci-archive:``) are read in place (metadata only; a
compressed archive is decompressed into the cache's scratch space and removed
again); a ``.sif`` path is hashed, as ``convert`` passes it through.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import ImageError
from hpcbridge.fsutil import atomic_write_text, undo_new_dirs
from hpcbridge.images.cache import Cache, hex_of
from hpcbridge.images.refs import ArchiveRef, RegistryRef, SifRef, parse_platform, parse_ref
from hpcbridge.images.resolve import index_key, tag_key

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.images.fetch.registry import FetchedManifest, RegistryClient

log = logging.getLogger(__name__)

#: A short timeout and one quick retry: a preview must not spend 15 s in silent retries.
PREVIEW_TIMEOUT = 10.0
PREVIEW_RETRIES = 1
META_DIR = "meta"


@dataclass(frozen=True)
class ImagePreview:
    """What is known about an image without converting it.

    ``digest`` is the manifest digest for the configured platform (None:
    ``unresolved`` says why).  The image config fields are None when unknown.
    ``sif_path``/``sif_sha256`` are set when the SIF is already converted.
    ``source`` says where the facts came from: ``sif`` (a .sif path), ``cache``
    (a converted SIF or remembered metadata), ``registry`` (manifest and config
    fetched now), ``local`` (a local archive or layout) or ``none``.
    """

    ref: str
    digest: Optional[str] = None
    workdir: Optional[str] = None
    entrypoint: Optional[tuple[str, ...]] = None
    cmd: Optional[tuple[str, ...]] = None
    env: Optional[tuple[str, ...]] = None
    sif_path: Optional[Path] = None
    sif_sha256: Optional[str] = None
    unresolved: Optional[str] = None
    source: str = "none"

    @property
    def resolved(self) -> bool:
        return self.digest is not None

    @property
    def converted(self) -> bool:
        return self.sif_path is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "workdir": self.workdir,
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "env": list(self.env) if self.env is not None else None,
            "sif_path": str(self.sif_path) if self.sif_path else None,
            "sif_sha256": self.sif_sha256,
            "unresolved": self.unresolved,
            "source": self.source,
        }


@dataclass(frozen=True)
class ImageFacts:
    """The image config fields a preview reports (from a config blob or the meta file)."""

    workdir: Optional[str] = None
    entrypoint: Optional[tuple[str, ...]] = None
    cmd: Optional[tuple[str, ...]] = None
    env: Optional[tuple[str, ...]] = None


def preview_image(
    ref: str, cfg: Config, *, offline: bool = False, insecure: bool = False
) -> ImagePreview:
    """The preview of ``ref`` under ``cfg``'s cache and platform (see the module docstring)."""
    parsed = parse_ref(ref)
    platform = parse_platform(cfg.convert.platform)
    if isinstance(parsed, SifRef):
        from hpcbridge.images.convert import convert_with_config

        res = convert_with_config(ref, cfg)  # a .sif is passed through, never converted
        return ImagePreview(
            ref, res.digest, sif_path=res.path, sif_sha256=res.sif_sha256, source="sif"
        )
    cache = Cache(
        cfg.cache.dir, tmp_dir=cfg.cache.tmp_dir, shared=cfg.cache.shared, group=cfg.cache.group
    )
    if isinstance(parsed, ArchiveRef):
        return _local(ref, parsed, cache, platform)
    plat = "/".join(p for p in platform if p)
    insecure = insecure or bool(
        {parsed.registry, parsed.api_host} & set(cfg.convert.insecure_registries)
    )
    known = _from_cache(ref, parsed, cache, plat)
    if offline:
        return known or _unresolved(ref, None)
    return _from_registry(ref, parsed, cache, platform, insecure, known)


def _from_cache(ref: str, parsed: RegistryRef, cache: Cache, plat: str) -> Optional[ImagePreview]:
    """What the cache knows without asking the registry (None: nothing)."""
    if parsed.digest:
        resolved = _known(cache, index_key(parsed, parsed.digest, plat))
        candidates = [resolved, parsed.digest]
    else:
        resolved = _known(cache, tag_key(parsed, plat))
        candidates = [resolved]
    for digest in candidates:
        if digest and (found := _cached(ref, cache, digest)) is not None:
            return found
    # A remembered resolution without the image config: the digest, nothing more.
    return ImagePreview(ref, resolved, source="cache") if resolved else None


def _known(cache: Cache, key: str) -> Optional[str]:
    res = cache.load_resolution(key) if key else None
    return str(res["digest"]) if res else None


def _cached(ref: str, cache: Cache, digest: str) -> Optional[ImagePreview]:
    """A converted SIF or remembered metadata of ``digest`` (None: neither)."""
    facts = _read_meta(cache, digest)
    path = cache.lookup(digest, touch=False)
    if path is not None:
        record = cache.read_record(digest)
        if facts is None:
            facts = ImageFacts(workdir=record.get("workdir") or None)
        sha = record.get("sif_sha256")
        if not sha:
            sha = str(cache.ensure_record(digest).get("sif_sha256"))
        return _preview(ref, digest, facts, "cache", sif_path=path, sif_sha256=str(sha))
    if facts is not None:
        return _preview(ref, digest, facts, "cache")
    return None


def _preview(ref: str, digest: str, facts: ImageFacts, source: str, **sif: Any) -> ImagePreview:
    return ImagePreview(
        ref, digest, facts.workdir, facts.entrypoint, facts.cmd, facts.env, source=source, **sif
    )


def _unresolved(ref: str, why: Optional[str]) -> ImagePreview:
    """Nothing known: ``why`` is the network error (None: offline was asked for)."""
    return ImagePreview(ref, unresolved=f"{why or 'offline'}; the cache does not know it")


def _from_registry(
    ref: str,
    parsed: RegistryRef,
    cache: Cache,
    platform: tuple[str, str, Optional[str]],
    insecure: bool,
    known: Optional[ImagePreview],
) -> ImagePreview:
    """HEAD the tag (as convert does); then the cache, else manifest + config."""
    from hpcbridge.images.fetch.registry import RegistryClient
    from hpcbridge.images.fetch.transport import Transport, TransportError

    plat = "/".join(p for p in platform if p)
    transport = Transport(timeout=PREVIEW_TIMEOUT, retries=PREVIEW_RETRIES, max_backoff=1.0)
    client = RegistryClient.for_ref(parsed, insecure=insecure, transport=transport)
    try:
        top = parsed.digest
        if top is None:
            head = client.head_manifest(parsed.repository, parsed.reference)
            top = head[0] if head else None
        if top is not None:
            digest = _known(cache, index_key(parsed, top, plat)) or top
            found = _cached(ref, cache, digest)
            if found is not None:
                _remember(cache, parsed, plat, top, digest)
                return found
        manifest = _platform_manifest(client, parsed, top or parsed.reference, platform)
        found = _cached(ref, cache, manifest.digest)
        if found is None:
            facts = _fetch_facts(client, parsed, manifest)
            _write_meta(cache, manifest.digest, facts, plat)
            found = _preview(ref, manifest.digest, facts, "registry")
        _remember(cache, parsed, plat, top, manifest.digest)
        return found
    except TransportError as exc:
        log.debug("preview of %s: %s", ref, exc)
        return known or _unresolved(ref, exc.message)
    finally:
        transport.close()


def _platform_manifest(
    client: RegistryClient,
    parsed: RegistryRef,
    reference: str,
    platform: tuple[str, str, Optional[str]],
) -> FetchedManifest:
    from hpcbridge.images.fetch.manifest import kind_of, parse_index, select_platform

    fetched = client.get_manifest(parsed.repository, reference)
    for _ in range(3):
        where = f"{parsed.name}@{fetched.digest}"
        if kind_of(fetched.data, fetched.media_type, where) == "manifest":
            return fetched
        chosen = select_platform(parse_index(fetched.data, where), platform, str(parsed))
        fetched = client.get_manifest(parsed.repository, chosen.digest)
    raise ImageError(f"{parsed}: image indexes nested too deeply")


def _fetch_facts(
    client: RegistryClient, parsed: RegistryRef, manifest: FetchedManifest
) -> ImageFacts:
    from hpcbridge.images.fetch.manifest import parse_manifest

    desc = parse_manifest(manifest.data, f"{parsed.name}@{manifest.digest}").config
    data = client.get_blob_bytes(parsed.repository, desc.digest, limit=4 << 20)
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{parsed}: the image config is not valid JSON") from exc
    return facts_of(config)


def facts_of(config: Any) -> ImageFacts:
    """WorkingDir, Entrypoint, Cmd and Env of an image config document (pure)."""
    inner = config.get("config") if isinstance(config, dict) else None
    inner = inner if isinstance(inner, dict) else {}

    def strings(key: str) -> Optional[tuple[str, ...]]:
        value = inner.get(key)
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return None

    return ImageFacts(
        workdir=str(inner.get("WorkingDir") or "") or None,
        entrypoint=strings("Entrypoint"),
        cmd=strings("Cmd"),
        env=strings("Env"),
    )


def _remember(
    cache: Cache, parsed: RegistryRef, plat: str, top: Optional[str], digest: str
) -> None:
    """Save the tag/index resolutions convert would save (only in an existing cache dir)."""
    if not cache.refs_dir.is_dir():
        try:
            cache.ensure()
        except ImageError as exc:
            log.debug("cannot remember the resolution of %s: %s", parsed, exc)
            return
    if top and top != digest:
        cache.save_resolution(index_key(parsed, top, plat), digest, index=top)
    key = tag_key(parsed, plat)
    if key and _known(cache, key) != digest:
        cache.save_resolution(key, digest, ref=str(parsed), index=top)


def meta_path(cache: Cache, digest: str) -> Path:
    """Where a preview remembers the image config of a manifest digest."""
    return cache.root / META_DIR / f"{hex_of(digest)}.json"


def _read_meta(cache: Cache, digest: str) -> Optional[ImageFacts]:
    try:
        obj = json.loads(meta_path(cache, digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("digest") != digest:
        return None
    return facts_of({"config": obj.get("config")})


def _write_meta(cache: Cache, digest: str, facts: ImageFacts, plat: str) -> None:
    config: dict[str, Any] = {}
    if facts.workdir:
        config["WorkingDir"] = facts.workdir
    for key, value in (("Entrypoint", facts.entrypoint), ("Cmd", facts.cmd), ("Env", facts.env)):
        if value is not None:
            config[key] = list(value)
    body = {"digest": digest, "platform": plat, "config": config, "fetched": time.time()}
    path = meta_path(cache, digest)
    try:
        cache.ensure()
        path.parent.mkdir(mode=cache.dir_mode, exist_ok=True)
        atomic_write_text(path, json.dumps(body, indent=2, sort_keys=True) + "\n", cache.file_mode)
    except (OSError, ImageError) as exc:  # a read-only shared cache: the preview still works
        log.debug("cannot remember the image config of %s: %s", digest, exc)


def _local(
    ref: str, parsed: ArchiveRef, cache: Cache, platform: tuple[str, str, Optional[str]]
) -> ImagePreview:
    """A local archive or layout: opened for its metadata (no layer is read)."""
    from hpcbridge.images.fetch.local import archive_compression, load_local

    path = Path(parsed.path).expanduser()
    if path.is_file() and archive_compression(path) != "none":
        with undo_new_dirs(cache.root, cache.tmp_dir):  # nothing left on a refusal
            cache.ensure()
            image = load_local(parsed, platform, cache.tmp_dir)
    else:
        image = load_local(parsed, platform)
    try:
        digest = image.manifest_digest
        found = _cached(ref, cache, digest)
        if found is not None:
            return found
        return _preview(ref, digest, facts_of(image.config), "local")
    finally:
        image.close()
