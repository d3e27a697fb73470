"""The Registry v2 client against the testbed's real docker-registry (distribution 2.8)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.manifest import ACCEPT, kind_of, parse_manifest
from hpcbridge.images.fetch.registry import RegistryClient
from hpcbridge.images.refs import RegistryRef, parse_ref
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed


def ref_of(tb: Testbed, name: str) -> RegistryRef:
    ref = parse_ref("docker://" + tb.image(name).ref)
    assert isinstance(ref, RegistryRef)
    return ref


def test_head_gives_the_manifest_digest(testbed: Testbed) -> None:
    for name in ("busybox", "debian-python", "whiteout"):
        ref = ref_of(testbed, name)
        client = RegistryClient.for_ref(ref)
        assert client.scheme == "http"  # loopback
        head = client.head_manifest(ref.repository, ref.reference)
        assert head is not None and head[0] == testbed.image(name).digest


def test_registry_2_8_needs_the_accept_header(testbed: Testbed) -> None:
    ref = ref_of(testbed, "busybox")
    client = RegistryClient.for_ref(ref)
    url = client.url(ref.repository, "manifests", ref.reference)
    bare = client.transport.request("GET", url, {})
    body = bare.content()
    got = client.get_manifest(ref.repository, ref.reference)
    assert got.digest == testbed.image("busybox").digest
    assert kind_of(got.data, got.media_type, "x") == "manifest"
    # without our Accept list the registry either refuses the OCI manifest (404)
    # or converts/falls back to another document: never the same digest
    assert bare.status == 404 or hashlib.sha256(body).hexdigest() != got.digest[7:]
    assert "application/vnd.oci.image.manifest.v1+json" in ACCEPT


def test_blobs_download_verified(testbed: Testbed, tmp_path: Path) -> None:
    ref = ref_of(testbed, "debian-python")
    client = RegistryClient.for_ref(ref)
    manifest = parse_manifest(client.get_manifest(ref.repository, ref.reference).data, "x")
    config = client.get_blob_bytes(ref.repository, manifest.config.digest)
    assert hashlib.sha256(config).hexdigest() == manifest.config.digest[7:]
    layer = manifest.layers[0]
    dest = tmp_path / layer.digest[7:]
    seen: list[int] = []
    client.download_blob(ref.repository, layer.digest, dest, size=layer.size, on_bytes=seen.append)
    assert sum(seen) == layer.size == dest.stat().st_size
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == layer.digest[7:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_unknown_tag_and_repo_are_clear(testbed: Testbed) -> None:
    ref = ref_of(testbed, "busybox")
    client = RegistryClient.for_ref(ref)
    with pytest.raises(ImageError, match=r"not found on 127\.0\.0\.1:5000"):
        client.get_manifest(ref.repository, "no-such-tag")
    with pytest.raises(ImageError, match=r"not found on 127\.0\.0\.1:5000"):
        client.head_manifest("hpcb/no-such-repo", "1")
