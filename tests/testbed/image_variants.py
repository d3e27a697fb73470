"""More registry forms of the busybox test image, for the fetch side of convert.

Real registries serve Docker schema-2 manifests and multi-platform indexes more often
than single OCI manifests, so next to ``hpcb/busybox:<tag>`` (OCI manifest) the registry
gets, all built from the same blobs:

* ``hpcb/busybox:<tag>-docker``  Docker schema 2 manifest (linux/amd64)
* ``hpcb/busybox:multi``         OCI image index: linux/amd64 (= the busybox image) and
                                 linux/arm64 (same layers, an arm64 config: selectable,
                                 not runnable here)
* ``hpcb/busybox:multi-docker``  the same as a Docker manifest list
* ``hpcb/busybox:<tag>-zstd``    OCI manifest with zstd-compressed layers
* ``hpcb/busybox:<tag>-uncompressed``  OCI manifest with plain tar layers

and an OCI layout whose index.json names that two-platform index (tag ``multi``). Everything is derived
deterministically from the busybox OCI layout, so the digests only change with it.
Pushed with plain v2 API calls (blob upload + manifest PUT), and only when missing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(oci_dir: Path, digest: str) -> bytes:
    return (oci_dir / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _desc(media_type: str, data: bytes, platform: dict[str, str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": _digest(data), "size": len(data)}
    if platform:
        d["platform"] = platform
    return d


def _docker_manifest(config: bytes, layers: list[dict[str, Any]]) -> bytes:
    return _canon(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": _desc(DOCKER_CONFIG, config),
            "layers": [{**lay, "mediaType": DOCKER_LAYER} for lay in layers],
        }
    )


def _recompressed(
    oci_dir: Path, layers: list[dict[str, Any]], work: Path
) -> dict[str, list[bytes]]:
    """The gzip layers as plain tars and as zstd (cached in `work`: zstd is not free)."""
    out: dict[str, list[bytes]] = {"tar": [], "zstd": []}
    work.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        raw = gzip.decompress(_blob(oci_dir, layer["digest"]))
        cached = work / (layer["digest"].split(":")[1] + ".zst")
        if not cached.exists():
            zst = subprocess.run(
                ["zstd", "-q", "-c", "-T1", "-19"], input=raw, capture_output=True, check=True
            ).stdout
            cached.with_suffix(".tmp").write_bytes(zst)
            cached.with_suffix(".tmp").rename(cached)
        out["tar"].append(raw)
        out["zstd"].append(cached.read_bytes())
    return out


def _oci_manifest(manifest: dict[str, Any], media_type: str, blobs: list[bytes]) -> bytes:
    layers = [_desc(media_type, b) for b in blobs]
    return _canon({**manifest, "layers": layers})


def variant_documents(oci_dir: Path, tag: str, work: Path) -> dict[str, Any]:
    """Every blob and manifest of the variants: {"blobs": [bytes], "manifests":
    [(reference, media_type, bytes)] in push order, "info": {...}}. `work` caches the
    zstd layers."""
    index = json.loads((oci_dir / "index.json").read_text())
    amd_manifest = _blob(oci_dir, index["manifests"][0]["digest"])
    manifest = json.loads(amd_manifest)
    amd_config = _blob(oci_dir, manifest["config"]["digest"])
    recompressed = _recompressed(oci_dir, manifest["layers"], work)
    zstd_manifest = _oci_manifest(manifest, OCI_LAYER_ZSTD, recompressed["zstd"])
    tar_manifest = _oci_manifest(manifest, OCI_LAYER_TAR, recompressed["tar"])
    config = json.loads(amd_config)
    arm_config = _canon({**config, "architecture": "arm64", "variant": "v8"})
    arm_manifest = _canon(
        {**manifest, "config": _desc(manifest["config"]["mediaType"], arm_config)}
    )
    amd = {"architecture": "amd64", "os": "linux"}
    arm = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    oci_index = _canon(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                _desc(OCI_MANIFEST, amd_manifest, amd),
                _desc(OCI_MANIFEST, arm_manifest, arm),
            ],
        }
    )
    docker_amd = _docker_manifest(amd_config, manifest["layers"])
    docker_arm = _docker_manifest(arm_config, manifest["layers"])
    docker_list = _canon(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                _desc(DOCKER_MANIFEST, docker_amd, amd),
                _desc(DOCKER_MANIFEST, docker_arm, arm),
            ],
        }
    )
    manifests = [
        (f"{tag}-docker", DOCKER_MANIFEST, docker_amd),
        (_digest(arm_manifest), OCI_MANIFEST, arm_manifest),
        ("multi", OCI_INDEX, oci_index),
        (_digest(docker_arm), DOCKER_MANIFEST, docker_arm),
        ("multi-docker", DOCKER_LIST, docker_list),
        (f"{tag}-zstd", OCI_MANIFEST, zstd_manifest),
        (f"{tag}-uncompressed", OCI_MANIFEST, tar_manifest),
    ]
    info = {
        "zstd": {
            "tag": f"{tag}-zstd",
            "digest": _digest(zstd_manifest),
            "media_type": OCI_MANIFEST,
        },
        "uncompressed": {
            "tag": f"{tag}-uncompressed",
            "digest": _digest(tar_manifest),
            "media_type": OCI_MANIFEST,
        },
        "docker": {
            "tag": f"{tag}-docker",
            "digest": _digest(docker_amd),
            "media_type": DOCKER_MANIFEST,
        },
        "index": {
            "tag": "multi",
            "digest": _digest(oci_index),
            "media_type": OCI_INDEX,
            "platforms": {
                "linux/amd64": _digest(amd_manifest),
                "linux/arm64/v8": _digest(arm_manifest),
            },
        },
        "docker-list": {
            "tag": "multi-docker",
            "digest": _digest(docker_list),
            "media_type": DOCKER_LIST,
            "platforms": {
                "linux/amd64": _digest(docker_amd),
                "linux/arm64/v8": _digest(docker_arm),
            },
        },
    }
    return {
        "blobs": [arm_config, *recompressed["zstd"], *recompressed["tar"]],
        "manifests": manifests,
        "info": info,
        "layout": {"index": oci_index, "arm_manifest": arm_manifest, "arm_config": arm_config},
    }


def write_multi_layout(oci_dir: Path, out: Path, docs: dict[str, Any]) -> None:
    """An OCI layout (hard links to oci_dir's blobs) whose index.json names the two-platform
    index (tag ``multi``)."""
    if (out / "index.json").exists():
        return
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    sha_dir = tmp / "blobs" / "sha256"
    sha_dir.mkdir(parents=True)
    for src in (oci_dir / "blobs" / "sha256").iterdir():
        dst = sha_dir / src.name
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    for key in ("arm_manifest", "arm_config", "index"):
        data = docs["layout"][key]
        (sha_dir / _digest(data).split(":")[1]).write_bytes(data)
    # as `docker buildx --output type=oci` writes it: index.json names ONE image, an index
    top = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **_desc(OCI_INDEX, docs["layout"]["index"]),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }
        ],
    }
    (tmp / "index.json").write_bytes(_canon(top))
    (tmp / "oci-layout").write_bytes(_canon({"imageLayoutVersion": "1.0.0"}))
    tmp.rename(out)


def _request(
    url: str, method: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> Any:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=60)


def _has(url: str, accept: str) -> str | None:
    try:
        with _request(url, "HEAD", headers={"Accept": accept}) as resp:
            return str(resp.headers.get("Docker-Content-Digest") or "") or None
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _upload_blob(base: str, data: bytes) -> None:
    digest = _digest(data)
    if _has(f"{base}/blobs/{digest}", "*/*"):
        return
    with _request(f"{base}/blobs/uploads/", "POST", b"") as resp:
        location = resp.headers["Location"]
    url = urllib.parse.urljoin(base + "/", location)
    url += ("&" if "?" in url else "?") + "digest=" + urllib.parse.quote(digest)
    with _request(url, "PUT", data, {"Content-Type": "application/octet-stream"}) as resp:
        if resp.status != 201:
            raise RuntimeError(f"blob upload {digest}: HTTP {resp.status}")


def push_variants(registry: str, repo: str, docs: dict[str, Any]) -> None:
    """Push what the registry lacks (the image's own blobs must already be there)."""
    base = f"http://{registry}/v2/{repo}"
    for data in docs["blobs"]:
        _upload_blob(base, data)
    for ref, media_type, data in docs["manifests"]:
        if _has(f"{base}/manifests/{ref}", media_type) == _digest(data):
            continue
        with _request(f"{base}/manifests/{ref}", "PUT", data, {"Content-Type": media_type}) as resp:
            got = resp.headers.get("Docker-Content-Digest")
        if got != _digest(data):
            raise RuntimeError(f"{repo}:{ref}: registry stored {got}, expected {_digest(data)}")
