"""The testbed's images, built without Docker and pushed to the local registry.

``ensure_images`` builds every image of tests/testbed/recipes once (cached under a hash
of its recipe chain and host inputs), writes it as an OCI layout, a docker-archive and an
oci-archive, and pushes it to the registry when the registry lacks it (e.g. after the
registry's storage was wiped). Warm calls only ask the registry for each manifest digest.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.testbed import image_layers as L
from tests.testbed import image_variants as V
from tests.testbed.image_build import (
    Store,
    canon,
    ensure_layer,
    extra_labels,
    layer_keys,
    layer_specs,
    sha,
)
from tests.testbed.recipes import CREATED, RECIPES
from tests.testbed.registry import manifest_digest

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
REPO_PREFIX = "hpcb"
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'

# ---------------------------------------------------------------------------------------
# OCI layout, archives, registry


def _write_layout(
    store: Store, out: Path, tag: str, blobs: list[L.LayerBlob], config: dict[str, Any]
) -> str:
    sha_dir = out / "blobs" / "sha256"
    sha_dir.mkdir(parents=True)
    for b in blobs:
        dst = sha_dir / b.digest.split(":", 1)[1]
        if not dst.exists():
            try:
                os.link(store.blob_path(b.digest), dst)
            except OSError:
                shutil.copyfile(store.blob_path(b.digest), dst)
    full_config = {
        "created": CREATED,
        "author": "hpcbridge testbed",
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
        "history": [{"created": CREATED, "created_by": b.created_by} for b in blobs],
    }
    config_bytes = canon(full_config)
    (sha_dir / sha(config_bytes)).write_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": "sha256:" + sha(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": L.LAYER_MEDIA_TYPE, "digest": b.digest, "size": b.size} for b in blobs
        ],
        "annotations": {"org.opencontainers.image.created": CREATED},
    }
    manifest_bytes = canon(manifest)
    digest = "sha256:" + sha(manifest_bytes)
    (sha_dir / sha(manifest_bytes)).write_bytes(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (out / "index.json").write_bytes(canon(index))
    (out / "oci-layout").write_bytes(canon({"imageLayoutVersion": "1.0.0"}))
    return digest


def _skopeo(store: Store, *args: str) -> None:
    policy = store.root / "policy.json"
    if not policy.exists():
        policy.write_text(POLICY)
    L.run_logged(
        ["skopeo", "--policy", str(policy), "copy", "--quiet", *args], store.logs / "skopeo.log"
    )


def _build_image(store: Store, name: str, out: Path, ref: str) -> dict[str, Any]:
    recipe = RECIPES[name]
    specs = layer_specs(name)
    keys = layer_keys(specs)
    blobs = [ensure_layer(store, specs, keys, i) for i in range(len(specs))]
    config = json.loads(json.dumps(recipe["config"]))
    config.setdefault("Labels", {}).update(extra_labels(store, specs, keys))
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    oci_dir = tmp / "oci"
    digest = _write_layout(store, oci_dir, recipe["tag"], blobs, config)
    tmp_src = f"oci:{oci_dir}:{recipe['tag']}"
    _skopeo(store, tmp_src, f"docker-archive:{tmp / 'image.docker.tar'}:{ref}")
    _skopeo(store, tmp_src, f"oci-archive:{tmp / 'image.oci.tar'}:{recipe['tag']}")
    meta = {
        "name": name,
        "tag": recipe["tag"],
        "digest": digest,
        "labels": config.get("Labels", {}),
        "config": config,
        "layers": [b.digest for b in blobs],
        "diff_ids": [b.diff_id for b in blobs],
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return meta


def image_key(name: str) -> str:
    recipe = RECIPES[name]
    specs = layer_specs(name)
    return sha(canon([layer_keys(specs)[-1], recipe["tag"], recipe["config"]]))[:16]


def _ensure_one(store: Store, name: str, registry: str) -> dict[str, Any]:
    recipe = RECIPES[name]
    repo = f"{REPO_PREFIX}/{name}"
    ref = f"{registry}/{repo}:{recipe['tag']}"
    out = store.root / f"{name}-{image_key(name)}"
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        meta = _build_image(store, name, out, ref)
        store.built = True
    if manifest_digest(repo, recipe["tag"], registry) != meta["digest"]:
        _skopeo(
            store,
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{out / 'oci'}:{recipe['tag']}",
            f"docker://{ref}",
        )
        pushed = manifest_digest(repo, recipe["tag"], registry)
        if pushed != meta["digest"]:
            raise RuntimeError(
                f"pushed {ref} but the registry reports {pushed}, not {meta['digest']}"
            )
    result = {
        "ref": ref,
        "digest": meta["digest"],
        "tag": recipe["tag"],
        "docker_archive": str(out / "image.docker.tar"),
        "oci_dir": str(out / "oci"),
        "oci_archive": str(out / "image.oci.tar"),
        "labels": dict(meta["labels"]),
        "config": meta["config"],
        "layers": list(meta["layers"]),
        "diff_ids": list(meta["diff_ids"]),
    }
    if recipe.get("variants"):
        result["variants"] = _ensure_variants(out, registry, repo, recipe["tag"])
    return result


def _ensure_variants(out: Path, registry: str, repo: str, tag: str) -> dict[str, Any]:
    """Docker schema 2, OCI index and Docker manifest list forms (image_variants.py)."""
    docs = V.variant_documents(out / "oci", tag, out / "variant-blobs")
    V.write_multi_layout(out / "oci", out / "oci-multi", docs)
    V.push_variants(registry, repo, docs)
    info: dict[str, Any] = docs["info"]
    for entry in info.values():
        entry["ref"] = f"{registry}/{repo}:{entry['tag']}"
    info["index"]["oci_dir"] = str(out / "oci-multi")
    return info


GC_AGE = 3600.0  # seconds: younger leftovers may belong to a session running older recipes


def _stale(path: Path) -> bool:
    """Old enough to delete, or a temporary dir whose builder process is gone."""
    if ".tmp-" in path.name:
        pid = path.name.rsplit(".tmp-", 1)[1]
        return not (pid.isdigit() and Path(f"/proc/{pid}").exists())
    try:
        return time.time() - path.lstat().st_mtime > GC_AGE
    except FileNotFoundError:
        return False


def _collect_garbage(store: Store) -> None:
    """Drop image dirs, root filesystems, layer records and blobs no current recipe uses
    (once they are an hour old) and leftovers of interrupted builds (called under the lock,
    after a build)."""
    live: set[str] = set()
    images: set[str] = set()
    for name in RECIPES:
        live.update(layer_keys(layer_specs(name)))
        images.add(f"{name}-{image_key(name)}")
    for d in store.rootfs.iterdir():
        if d.name not in live and _stale(d):
            shutil.rmtree(d, ignore_errors=True)
    for d in store.root.iterdir():
        if d.is_dir() and "-" in d.name and d.name not in images and _stale(d):
            shutil.rmtree(d, ignore_errors=True)
    keep_blobs: set[str] = set()
    for meta in store.layers.glob("*.json"):
        if meta.stem in live or not _stale(meta):
            keep_blobs.add(json.loads(meta.read_text())["digest"].split(":")[1])
        else:
            meta.unlink()
    for blob in (store.blobs / "sha256").iterdir():
        if blob.name not in keep_blobs and _stale(blob):
            blob.unlink()


def ensure_images(
    cache_dir: Path,
    state_dir: Path,
    registry: str = "127.0.0.1:5000",
    names: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Build (once) and push (when missing) the testbed images; name -> info dict with
    ref, digest, tag, docker_archive, oci_dir, oci_archive (str paths), labels, config,
    layers (compressed blob digests), diff_ids."""
    store = Store(Path(cache_dir))
    lock_fd = os.open(store.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        result = {name: _ensure_one(store, name, registry) for name in (names or list(RECIPES))}
        if store.built:
            _collect_garbage(store)
    finally:
        os.close(lock_fd)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    (Path(state_dir) / "images.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n"
    )
    return result
