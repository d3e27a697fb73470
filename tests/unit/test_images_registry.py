"""Registry v2 client against a tiny real HTTP registry on 127.0.0.1 (tests/unit/images_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.manifest import parse_index, select_platform
from hpcbridge.images.fetch.registry import DigestMismatch, RegistryClient
from hpcbridge.images.fetch.transport import Transport
from tests.unit.images_support import Behaviour, Registry, make_image, sha

IMG = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}, {"etc/motd": b"welcome\n"}])


def client(reg: Registry, env: dict[str, str] | None = None, retries: int = 3) -> RegistryClient:
    waits: list[float] = []
    t = Transport(retries=retries, sleep=waits.append, timeout=10)
    c = RegistryClient(reg.host, transport=t, environ=env or {"HOME": "/nonexistent"})
    c.waits = waits  # type: ignore[attr-defined]
    return c


def test_head_resolves_tag_with_one_request() -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        c = client(reg)
        assert c.scheme == "http"  # loopback: plain http is allowed
        assert c.head_manifest("tiny", "v1") == (IMG.digest, IMG.media_type)
        assert reg.requests() == ["/v2/tiny/manifests/v1"]
        assert reg.log[0][0] == "HEAD"
        accept = reg.log[0][2]["Accept"]
        for media in (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ):
            assert media in accept


def test_non_loopback_defaults_to_https() -> None:
    assert RegistryClient("ghcr.io", environ={}).scheme == "https"
    assert RegistryClient("reg.lan:5000", insecure=True, environ={}).scheme == "http"


def test_get_manifest_by_digest_is_verified() -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        got = client(reg).get_manifest("tiny", IMG.digest)
        assert got.digest == IMG.digest and got.data == IMG.manifest
        # a registry answering other bytes for a digest is caught
        other = make_image([{"x": b"y"}])
        reg.manifests[("tiny", IMG.digest)] = (other.manifest, other.media_type)
        with pytest.raises(DigestMismatch, match="hashes to"):
            client(reg).get_manifest("tiny", IMG.digest)


def test_anonymous_bearer_token_flow_and_token_reuse() -> None:
    with Registry(Behaviour(auth="bearer")) as reg:
        reg.push("tiny", "v1", IMG)
        c = client(reg)
        c.get_manifest("tiny", "v1")
        c.get_blob_bytes("tiny", IMG.config_digest)
        assert reg.tokens_issued == 1
        paths = reg.requests()
        assert paths[0] == "/v2/tiny/manifests/v1"  # 401
        assert paths[1].startswith("/token?") and "service=test-registry" in paths[1]
        assert paths[2:] == ["/v2/tiny/manifests/v1", f"/v2/tiny/blobs/{IMG.config_digest}"]
        assert "Authorization" not in reg.log[1][2]  # anonymous


def test_bearer_with_credentials_from_env() -> None:
    b = Behaviour(auth="bearer", anonymous_token=False)
    with Registry(b) as reg:
        reg.push("tiny", "v1", IMG)
        with pytest.raises(ImageError, match="requires authentication"):
            client(reg).get_manifest("tiny", "v1")
        env = {"HPCBRIDGE_REGISTRY_USERNAME": "alice", "HPCBRIDGE_REGISTRY_PASSWORD": "s3cret"}
        assert client(reg, env).get_manifest("tiny", "v1").digest == IMG.digest
        bad = {"HPCBRIDGE_REGISTRY_USERNAME": "alice", "HPCBRIDGE_REGISTRY_PASSWORD": "wrong"}
        with pytest.raises(ImageError, match="refused the credentials from"):
            client(reg, bad).get_manifest("tiny", "v1")


def test_basic_auth() -> None:
    with Registry(Behaviour(auth="basic")) as reg:
        reg.push("tiny", "v1", IMG)
        env = {"APPTAINER_DOCKER_USERNAME": "alice", "APPTAINER_DOCKER_PASSWORD": "s3cret"}
        assert client(reg, env).head_manifest("tiny", "v1") == (IMG.digest, IMG.media_type)
        with pytest.raises(ImageError, match="requires authentication"):
            client(reg).head_manifest("tiny", "v1")


def test_retries_with_backoff_on_503_and_429() -> None:
    with Registry(Behaviour(fail_next=[503, 502, 429])) as reg:
        reg.push("tiny", "v1", IMG)
        c = client(reg, retries=5)
        assert c.get_manifest("tiny", "v1").digest == IMG.digest
        waits = c.waits  # type: ignore[attr-defined]
        assert len(waits) == 3
        assert 0 < waits[0] < waits[1]  # exponential
        assert waits[2] == 0  # Retry-After: 0 honoured


def test_gives_up_after_retries() -> None:
    with Registry(Behaviour(fail_next=[503] * 10)) as reg:
        reg.push("tiny", "v1", IMG)
        with pytest.raises(ImageError, match="HTTP 503"):
            client(reg, retries=2).get_manifest("tiny", "v1")


def test_connection_refused_is_retried_then_clear() -> None:
    waits: list[float] = []
    c = RegistryClient(
        "127.0.0.1:9", transport=Transport(retries=2, sleep=waits.append), environ={}
    )
    with pytest.raises(ImageError, match=r"cannot reach 127\.0\.0\.1:9"):
        c.head_manifest("x", "latest")
    assert len(waits) == 2


def test_not_found_names_the_image() -> None:
    with Registry() as reg, pytest.raises(ImageError, match=r"127\.0\.0\.1:\d+/nope:v1 not found"):
        client(reg).get_manifest("nope", "v1")


def test_strict_accept_like_registry_2_8() -> None:
    # registry 2.8 answers 404 to an OCI manifest unless it is in Accept: we always send it
    with Registry(Behaviour(strict_accept=True)) as reg:
        reg.push("tiny", "v1", IMG)
        assert client(reg).get_manifest("tiny", "v1").media_type == IMG.media_type


def test_blob_download_verified_and_renamed(tmp_path: Path) -> None:
    with Registry(Behaviour(redirect_blobs=True, auth="bearer")) as reg:
        reg.push("tiny", "v1", IMG)
        blob, _ = IMG.layers[0]
        dest = tmp_path / sha(blob)[7:]
        seen: list[int] = []
        client(reg).download_blob("tiny", sha(blob), dest, size=len(blob), on_bytes=seen.append)
        assert dest.read_bytes() == blob and sum(seen) == len(blob)
        assert list(tmp_path.iterdir()) == [dest]
        # the redirected request went to another path without the registry's token?
        store = [h for m, p, h in reg.log if p.startswith("/blobstore/")]
        assert store and all("Authorization" in h for h in store)  # same host: kept


def test_redirect_to_other_host_drops_authorization(tmp_path: Path) -> None:
    blob, _ = IMG.layers[0]
    with Registry() as store, Registry(Behaviour(auth="bearer", redirect_blobs=True)) as reg:
        store.blobs[sha(blob)] = blob
        reg.behaviour.redirect_to = store.host
        reg.push("tiny", "v1", IMG)
        dest = tmp_path / "blob"
        client(reg).download_blob("tiny", sha(blob), dest, size=len(blob))
        assert dest.read_bytes() == blob
        at_registry = [h for m, p, h in reg.log if "/blobs/" in p]
        at_store = [h for m, p, h in store.log if p.startswith("/blobstore/")]
        assert at_registry[-1]["Authorization"] == "Bearer tok-valid"
        assert at_store and "Authorization" not in at_store[0]


def test_corrupt_blob_is_never_kept(tmp_path: Path) -> None:
    with Registry(Behaviour(corrupt_blobs=True)) as reg:
        reg.push("tiny", "v1", IMG)
        blob, _ = IMG.layers[0]
        dest = tmp_path / sha(blob)[7:]
        with pytest.raises(DigestMismatch, match="hashes to"):
            client(reg, retries=1).download_blob("tiny", sha(blob), dest, size=len(blob))
        assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_retried(tmp_path: Path) -> None:
    blob, _ = IMG.layers[0]
    with Registry(Behaviour(truncate_once={sha(blob)})) as reg:
        reg.push("tiny", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        c = client(reg)
        c.download_blob("tiny", sha(blob), dest, size=len(blob))
        assert dest.read_bytes() == blob
        assert len(c.waits) == 1  # type: ignore[attr-defined]
        assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_index_platform_selection() -> None:
    amd = make_image([{"a": b"amd"}], arch="amd64")
    arm = make_image([{"a": b"arm"}], arch="arm64")
    with Registry() as reg:
        idx = reg.push_index("multi", "v1", {"linux/amd64": amd, "linux/arm64/v8": arm})
        c = client(reg)
        top = c.head_manifest("multi", "v1")
        assert top is not None and top[0] == idx
        index = parse_index(c.get_manifest("multi", "v1").data, "x")
        assert select_platform(index, ("linux", "amd64", None), "x").digest == amd.digest
        assert select_platform(index, ("linux", "arm64", None), "x").digest == arm.digest
        assert select_platform(index, ("linux", "arm64", "v8"), "x").digest == arm.digest
        with pytest.raises(ImageError, match="no image for platform linux/s390x") as err:
            select_platform(index, ("linux", "s390x", None), "x")
        assert "linux/amd64, linux/arm64/v8" in (err.value.hint or "")


def test_head_without_digest_header_returns_none() -> None:
    with Registry(Behaviour(no_digest_header=True)) as reg:
        reg.push("tiny", "v1", IMG)
        assert client(reg).head_manifest("tiny", "v1") is None


def test_blobs_are_group_readable_whatever_the_umask(tmp_path: Path) -> None:
    import os

    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        blob, _ = IMG.layers[0]
        dest = tmp_path / sha(blob)[7:]
        old = os.umask(0o077)
        try:
            client(reg).download_blob("tiny", sha(blob), dest, size=len(blob))
        finally:
            os.umask(old)
        assert dest.stat().st_mode & 0o777 == 0o644
