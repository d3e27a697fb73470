"""Image reference parsing (pure)."""

from __future__ import annotations

import pytest

from hpcbridge.errors import InputError
from hpcbridge.images.refs import (
    ArchiveRef,
    RegistryRef,
    SifRef,
    is_loopback_host,
    parse_platform,
    parse_ref,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "api", "repo", "tag", "digest"),
    [
        (
            "docker://busybox",
            "docker.io",
            "registry-1.docker.io",
            "library/busybox",
            "latest",
            None,
        ),
        ("busybox:1.36", "docker.io", "registry-1.docker.io", "library/busybox", "1.36", None),
        ("docker://user/app:v2", "docker.io", "registry-1.docker.io", "user/app", "v2", None),
        (
            "docker://docker.io/library/alpine:3.19",
            "docker.io",
            "registry-1.docker.io",
            "library/alpine",
            "3.19",
            None,
        ),
        (
            "docker://index.docker.io/alpine",
            "docker.io",
            "registry-1.docker.io",
            "library/alpine",
            "latest",
            None,
        ),
        ("docker://ghcr.io/org/sim:1.2", "ghcr.io", "ghcr.io", "org/sim", "1.2", None),
        (
            "docker://127.0.0.1:5000/hpcb/busybox:1.35",
            "127.0.0.1:5000",
            "127.0.0.1:5000",
            "hpcb/busybox",
            "1.35",
            None,
        ),
        ("docker://localhost/x", "localhost", "localhost", "x", "latest", None),
        (f"docker://ghcr.io/org/sim@{D}", "ghcr.io", "ghcr.io", "org/sim", None, D),
        (f"docker://ghcr.io/org/sim:1.2@{D}", "ghcr.io", "ghcr.io", "org/sim", "1.2", D),
        (
            "docker://reg.example.org:8443/a/b/c:x_y.z-1",
            "reg.example.org:8443",
            "reg.example.org:8443",
            "a/b/c",
            "x_y.z-1",
            None,
        ),
    ],
)
def test_docker_refs(
    text: str, registry: str, api: str, repo: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_ref(text)
    assert isinstance(ref, RegistryRef)
    assert (ref.registry, ref.api_host, ref.repository, ref.tag, ref.digest) == (
        registry,
        api,
        repo,
        tag,
        digest,
    )
    assert ref.reference == (digest or tag)


def test_bare_name_is_docker_and_says_so() -> None:
    ref = parse_ref("python:3.12")
    assert isinstance(ref, RegistryRef) and ref.implicit_scheme
    assert str(ref) == "docker://docker.io/library/python:3.12"
    assert not parse_ref("docker://python:3.12").implicit_scheme  # type: ignore[union-attr]


def test_loopback_detection() -> None:
    for host in ("127.0.0.1:5000", "localhost:5000", "localhost", "[::1]:5000", "127.1.2.3"):
        assert is_loopback_host(host), host
    for host in ("ghcr.io", "10.0.0.1:5000", "127.example.org", "registry-1.docker.io"):
        assert not is_loopback_host(host), host
    assert parse_ref("docker://127.0.0.1:5000/x").is_loopback  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "kind", "path", "tag"),
    [
        ("docker-archive:/tmp/img.tar", "docker-archive", "/tmp/img.tar", None),
        ("docker-archive:rel/img.tar", "docker-archive", "rel/img.tar", None),
        ("oci:/data/layout", "oci", "/data/layout", None),
        ("oci:/data/layout:v1", "oci", "/data/layout", "v1"),
        ("oci:./lay.out:latest", "oci", "./lay.out", "latest"),
        ("oci-archive:/x/img.oci.tar", "oci-archive", "/x/img.oci.tar", None),
        ("oci-archive:/x/img.oci.tar:1.0", "oci-archive", "/x/img.oci.tar", "1.0"),
    ],
)
def test_local_refs(text: str, kind: str, path: str, tag: str | None) -> None:
    ref = parse_ref(text)
    assert ref == ArchiveRef(kind, path, tag)


def test_sif_pass_through() -> None:
    assert parse_ref("/shared/images/x.sif") == SifRef("/shared/images/x.sif")
    assert parse_ref("rel.sif") == SifRef("rel.sif")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("docker://", "repository name is missing"),
        ("docker://Busybox", "'Busybox' is not a valid repository component"),
        ("docker://busybox:bad/tag", "not a valid registry host"),
        ("docker://busybox:-x", "'-x' is not a valid tag"),
        ("docker://busybox@sha256:1234", "is not a digest"),
        ("docker://busybox@md5:" + "a" * 32, "is not a digest"),
        ("library://sylabs/alpine", "scheme 'library'"),
        ("https://example.org/x.tar", "scheme 'https'"),
        ("./image.tar", "needs its format"),
        ("/data/image.tar", "needs its format"),
        ("oci:", "needs a path"),
        ("oci:/d:bad tag", "not a valid tag"),
        ("docker://reg_istry.io:5000/x", "not a valid registry"),
    ],
)
def test_bad_refs_name_value_and_forms(text: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        parse_ref(text)
    assert fragment in err.value.message
    assert repr(text) in err.value.message
    assert "docker-archive:PATH" in (err.value.hint or "")


def test_platform() -> None:
    assert parse_platform("linux/amd64") == ("linux", "amd64", None)
    assert parse_platform("linux/arm64/v8") == ("linux", "arm64", "v8")
    for bad in ("amd64", "linux/", "linux/amd64/v8/x", "Linux/AMD64"):
        with pytest.raises(InputError, match="invalid platform"):
            parse_platform(bad)
