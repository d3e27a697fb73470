"""Image manifests and indexes (Docker schema 2 and OCI): parse, select a platform.

Pure: bytes in, values out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.mediatypes import (
    ACCEPT,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
)
from hpcbridge.images.refs import Platform

__all__ = [
    "ACCEPT",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Descriptor",
    "Index",
    "Manifest",
    "canonical_manifest",
    "kind_of",
    "parse_index",
    "parse_manifest",
    "platform_text",
    "select_platform",
    "sha256_digest",
]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Optional[dict[str, Any]] = None
    annotations: Optional[dict[str, str]] = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise ImageError(f"{where}: a descriptor is not a JSON object")
        digest = obj.get("digest")
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
            raise ImageError(f"{where}: unsupported or missing digest {digest!r}")
        try:
            int(digest[7:], 16)
        except ValueError:
            raise ImageError(f"{where}: digest {digest!r} is not hexadecimal") from None
        size = obj.get("size", -1)
        if not isinstance(size, int):
            raise ImageError(f"{where}: descriptor size {size!r} is not an integer")
        plat = obj.get("platform")
        ann = obj.get("annotations")
        urls = obj.get("urls") or ()
        return cls(
            media_type=str(obj.get("mediaType") or ""),
            digest=digest,
            size=size,
            platform=plat if isinstance(plat, dict) else None,
            annotations={str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else None,
            urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
        )


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ImageError(f"{where}: not a JSON object")
    return obj


def kind_of(data: bytes, content_type: str, where: str) -> str:
    """'manifest' or 'index', from the body's mediaType, else the Content-Type."""
    obj = _load(data, where)
    media = str(obj.get("mediaType") or content_type.split(";")[0].strip())
    if media in DOCKER_SCHEMA1 or obj.get("schemaVersion") == 1:
        raise ImageError(
            f"{where}: Docker schema 1 manifests are not supported",
            "push the image again with a current tool (schema 2 or OCI)",
        )
    if media in INDEX_TYPES or ("manifests" in obj and "layers" not in obj):
        return "index"
    if media in MANIFEST_TYPES or "layers" in obj:
        return "manifest"
    raise ImageError(f"{where}: unknown manifest media type {media!r}")


def parse_manifest(data: bytes, where: str) -> Manifest:
    obj = _load(data, where)
    if not isinstance(obj.get("layers"), list) or "config" not in obj:
        raise ImageError(f"{where}: not an image manifest (no config or layers)")
    config = Descriptor.from_json(obj["config"], where)
    layers = tuple(Descriptor.from_json(d, where) for d in obj["layers"])
    media = str(obj.get("mediaType") or (OCI_MANIFEST if config.media_type == OCI_CONFIG else ""))
    for layer in layers:
        if layer.media_type and layer.media_type not in LAYER_TYPES:
            raise ImageError(
                f"{where}: layer {layer.digest} has media type {layer.media_type!r}, "
                "which is not a filesystem layer",
                "this looks like an artifact (Helm chart, SBOM, ...), not a container image",
            )
    return Manifest(media, config, layers)


def parse_index(data: bytes, where: str) -> Index:
    obj = _load(data, where)
    items = obj.get("manifests")
    if not isinstance(items, list):
        raise ImageError(f"{where}: not an image index (no manifests)")
    return Index(
        str(obj.get("mediaType") or OCI_INDEX), tuple(Descriptor.from_json(d, where) for d in items)
    )


def platform_text(p: Optional[dict[str, Any]]) -> str:
    if not p:
        return "unknown"
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return text + (f"/{p['variant']}" if p.get("variant") else "")


def select_platform(index: Index, platform: Platform, where: str) -> Descriptor:
    """The manifest of ``index`` for (os, arch, variant); raise listing what exists."""
    os_name, arch, variant = platform
    candidates = []
    for d in index.manifests:
        p = d.platform or {}
        if d.annotations and d.annotations.get("vnd.docker.reference.type"):
            continue  # attestations and other non-image entries
        if p.get("os") != os_name or p.get("architecture") != arch:
            continue
        # arm64 images often carry no variant at all; v8 is the only one there is.
        bare_v8 = arch == "arm64" and variant == "v8" and not p.get("variant")
        if variant is not None and p.get("variant") != variant and not bare_v8:
            continue
        candidates.append(d)
    if not candidates:
        available = sorted(
            {
                platform_text(d.platform)
                for d in index.manifests
                if not (d.annotations and d.annotations.get("vnd.docker.reference.type"))
            }
        )
        want = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
        raise ImageError(
            f"{where} has no image for platform {want}",
            f"available: {', '.join(available) or 'none'}; choose one with --platform",
        )
    if variant is None:
        # Prefer an entry without a variant, then the conventional default one.
        default = {"arm64": "v8", "arm": "v7"}.get(arch)

        def rank(d: Descriptor) -> int:
            v = (d.platform or {}).get("variant")
            return 0 if not v else 1 if v == default else 2

        candidates.sort(key=rank)
    return candidates[0]


def canonical_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """An OCI manifest for a config and *uncompressed* layers (digest, size).

    Used for ``docker-archive`` input, which stores no manifest: the same archive
    always gives the same bytes (Go's field order, no indentation), so the digest
    is a stable cache key.  It is *not* the registry's manifest digest (that one
    names compressed layers the archive does not contain).
    """
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
