"""images/preview.py: digest and image config from the manifest and config only, or the cache.

Against the tiny real registry of tests/unit/images_support.py: the requests a
preview makes are counted (never a layer blob), what it remembers is read back
offline, and an unreachable or offline registry gives ``unresolved`` at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcbridge.config import Config, load_config
from hpcbridge.errors import ImageError
from hpcbridge.images.cache import Cache
from hpcbridge.images.preview import meta_path, preview_image
from tests.unit.images_support import Registry, make_image, sha, write_oci_layout

IMG = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}], cmd=["python3", "-c", "print(1)"])
LAYERS = [sha(blob) for blob, _ in IMG.layers]


def cfg_for(tmp_path: Path) -> Config:
    return load_config(
        {"cache.dir": str(tmp_path / "cache")},
        cwd=tmp_path,
        environ={"HOME": str(tmp_path / "home")},
    )


def blobs(cfg: Config) -> list[Path]:
    root = cfg.cache.dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_registry_preview_fetches_manifest_and_config_only(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with Registry() as reg:
        reg.push("app", "v1", IMG)
        ref = f"docker://{reg.host}/app:v1"
        got = preview_image(ref, cfg)
        assert got.digest == IMG.digest and got.source == "registry"
        assert got.workdir == "/work"
        assert got.entrypoint is None and got.cmd == ("python3", "-c", "print(1)")
        assert got.env == ("PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world")
        assert got.sif_path is None and got.unresolved is None
        paths = reg.requests()
        assert paths == [
            "/v2/app/manifests/v1",  # HEAD
            f"/v2/app/manifests/{IMG.digest}",  # GET, by the digest the HEAD gave
            f"/v2/app/blobs/{IMG.config_digest}",
        ]
        assert blobs(cfg) == []
        meta = json.loads(meta_path(Cache(cfg.cache.dir), IMG.digest).read_text())
        assert meta["config"]["WorkingDir"] == "/work" and meta["digest"] == IMG.digest
        # Again online: one HEAD, the rest from the cache.
        before = len(reg.requests())
        again = preview_image(ref, cfg)
        assert again.digest == IMG.digest and again.source == "cache"
        assert again.workdir == "/work"
        assert len(reg.requests()) == before + 1
    # Offline and with the registry gone: from the cache, no request at all.
    assert preview_image(ref, cfg, offline=True).workdir == "/work"
    assert preview_image(ref, cfg).digest == IMG.digest


def test_index_picks_the_configured_platform(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    arm = make_image([{"a": b"arm"}], arch="arm64")
    with Registry() as reg:
        reg.push_index("multi", "v1", {"linux/amd64": IMG, "linux/arm64": arm})
        got = preview_image(f"docker://{reg.host}/multi:v1", cfg)
        assert got.digest == IMG.digest and got.workdir == "/work"
        assert not any(layer in p for p in reg.requests() for layer in LAYERS)


def test_offline_with_nothing_cached_is_unresolved_without_a_request(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with Registry() as reg:
        reg.push("app", "v1", IMG)
        got = preview_image(f"docker://{reg.host}/app:v1", cfg, offline=True)
        assert reg.requests() == []
    assert got.digest is None and got.unresolved and "offline" in got.unresolved
    assert not cfg.cache.dir.exists()  # nothing written


def test_unreachable_registry_is_unresolved_and_writes_nothing(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with Registry() as reg:
        host = reg.host
    got = preview_image(f"docker://{host}/app:v1", cfg)  # the server is gone: refused
    assert got.digest is None and got.unresolved and "cannot reach" in got.unresolved
    assert not cfg.cache.dir.exists()


def test_a_missing_image_is_an_error(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with Registry() as reg, pytest.raises(ImageError, match="not found"):
        preview_image(f"docker://{reg.host}/nope:v1", cfg)


def test_a_converted_image_gives_its_sif(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    cache = Cache(cfg.cache.dir)
    cache.ensure()
    cache.sif_path(IMG.digest).write_bytes(b"not really a sif")
    cache.write_record(IMG.digest, {"digest": IMG.digest, "sif_sha256": "ab" * 32, "workdir": "/w"})
    with Registry() as reg:
        reg.push("app", "v1", IMG)
        got = preview_image(f"docker://{reg.host}/app:v1", cfg)
        assert reg.requests() == ["/v2/app/manifests/v1"]  # the HEAD only
    assert got.sif_path == cache.sif_path(IMG.digest) and got.sif_sha256 == "ab" * 32
    assert got.workdir == "/w" and got.converted


def test_local_layout_reads_metadata_only(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    write_oci_layout(tmp_path / "layout", IMG, tag="v1")
    got = preview_image(f"oci:{tmp_path / 'layout'}:v1", cfg)
    assert got.digest == IMG.digest and got.source == "local" and got.workdir == "/work"
    assert not cfg.cache.dir.exists()
