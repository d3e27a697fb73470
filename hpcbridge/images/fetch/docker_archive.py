"""``docker-archive:``: a ``docker save`` / ``skopeo copy`` tarball, read in place.

``manifest.json`` lists the images of the archive; one is chosen as skopeo
chooses (``docker-archive:x.tar:repo:tag`` by one of its ``RepoTags``,
``docker-archive:x.tar:@N`` by position, the only one when no selector is
given).  Layers are members of the tar (an offset and a length), never
extracted; the manifest digest is that of a canonical OCI manifest of the
config and the layers as stored, so one image gives one digest however it was
saved.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import HpcbridgeError, ImageError
from hpcbridge.images.fetch.image import Image
from hpcbridge.images.fetch.manifest import OCI_LAYER, canonical_manifest, sha256_digest
from hpcbridge.images.fetch.tarstore import TarStore
from hpcbridge.images.protocols import Layer

_CHUNK = 1 << 20


def _sniff(store: TarStore, name: str) -> bytes:
    ti = store.members[name]
    with open(store.path, "rb") as fh:
        fh.seek(ti.offset_data)
        return fh.read(min(ti.size, 8))


def _layer_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER + "+gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER + "+zstd"
    return OCI_LAYER


def _hash_member(store: TarStore, name: str) -> str:
    ti = store.members[name]
    h = hashlib.sha256()
    with open(store.path, "rb") as fh:
        fh.seek(ti.offset_data)
        left = ti.size
        while left:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                raise ImageError(f"{store.where}: {name} is truncated")
            h.update(chunk)
            left -= len(chunk)
    return "sha256:" + h.hexdigest()


def _normalise(tag: str) -> str:
    """``busybox:1`` -> ``docker.io/library/busybox:1`` (what a selector was parsed to)."""
    from hpcbridge.images.refs import parse_docker

    try:
        named = parse_docker(tag)
    except HpcbridgeError:
        return tag
    return f"{named.name}:{named.tag}"


def select_entry(
    entries: list[Any], where: str, tag: Optional[str], index: Optional[int]
) -> dict[str, Any]:
    """The manifest.json entry a selector names (pure; see the module docstring)."""
    tags = [str(t) for e in entries if isinstance(e, dict) for t in (e.get("RepoTags") or [])]
    pick = f"name one: {where}:REPO:TAG or {where}:@N (N from 0 to {len(entries) - 1})"
    if index is not None:
        if not 0 <= index < len(entries):
            raise ImageError(f"{where} holds {len(entries)} image(s); there is no @{index}", pick)
        chosen = entries[index]
    elif tag is not None:
        hits = [
            e
            for e in entries
            if isinstance(e, dict)
            and any(_normalise(str(t)) == tag for t in (e.get("RepoTags") or []))
        ]
        if not hits:
            raise ImageError(
                f"{where} has no image tagged {tag}", f"tags in it: {', '.join(tags) or 'none'}"
            )
        chosen = hits[0]
    elif len(entries) > 1:
        raise ImageError(
            f"{where} holds {len(entries)} images (tags: {', '.join(tags) or 'none'})", pick
        )
    else:
        chosen = entries[0]
    if not isinstance(chosen, dict):
        raise ImageError(f"{where}: manifest.json entry is not an object")
    return chosen


def load_docker_archive(
    path: Path,
    ref_text: str,
    *,
    tag: Optional[str] = None,
    index: Optional[int] = None,
    where: Optional[str] = None,
) -> Image:
    """The image of an uncompressed docker archive at ``path``; errors name ``where``
    (the user's archive when ``path`` is its decompressed copy)."""
    where = where or str(path)
    store = TarStore(path, where=where)
    if not store.has("manifest.json"):
        if store.has("index.json"):
            raise ImageError(
                f"{where} is an OCI archive, not a docker archive", f"use oci-archive:{where}"
            )
        raise ImageError(f"{where} is not a docker-archive (no manifest.json)")
    try:
        entries = json.loads(store.read_name("manifest.json"))
    except ValueError as exc:
        raise ImageError(f"{where}: manifest.json is not valid JSON") from exc
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"{where}: manifest.json lists no image")
    entry = select_entry(entries, where, tag, index)
    config_name = os.path.normpath(str(entry.get("Config", ""))).lstrip("/")
    config = store.read_name(config_name)
    config_digest = sha256_digest(config)
    try:
        diff_ids = list(json.loads(config)["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"{where}: the image config has no rootfs.diff_ids") from exc
    names = [os.path.normpath(str(n)).lstrip("/") for n in entry.get("Layers") or []]
    if len(names) != len(diff_ids):
        raise ImageError(f"{where}: {len(names)} layers but the config lists {len(diff_ids)}")
    layers: list[Layer] = []
    for name, diff_id in zip(names, diff_ids):
        if name not in store.members:
            raise ImageError(f"{where}: layer {name} is missing from the archive")
        media = _layer_media_type(_sniff(store, name))
        stem = os.path.basename(name).split(".")[0]
        if media == OCI_LAYER:
            digest = str(diff_id)  # an uncompressed layer's digest is its diff_id
        elif name.startswith("blobs/sha256/") or len(stem) == 64:
            digest = "sha256:" + (name.rsplit("/", 1)[1] if name.startswith("blobs/") else stem)
        else:
            digest = _hash_member(store, name)
        layers.append(store.member_layer(name, digest, media))
    manifest = canonical_manifest(config, [(layer.digest, layer.size) for layer in layers])
    return Image(sha256_digest(manifest), config_digest, config, layers, ref_text)
