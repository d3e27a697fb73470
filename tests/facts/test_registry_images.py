"""The testbed's registry serves every test image, and the other source formats
(docker-archive, OCI layout, oci-archive) hold the same images (checked with skopeo)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.recipes import RECIPES
from tests.testbed.registry import MANIFEST_ACCEPT

NAMES = sorted(RECIPES)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _get(
    url: str, accept: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept} if accept else {}
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def _split(ref: str) -> tuple[str, str, str]:
    """127.0.0.1:5000/hpcb/name:tag -> (host, repo, tag)."""
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    return host, repo, tag


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _oci_config(oci_dir: Path) -> dict[str, Any]:
    index = json.loads((oci_dir / "index.json").read_text())
    manifest = _blob_json(oci_dir, index["manifests"][0]["digest"])
    return _blob_json(oci_dir, manifest["config"]["digest"])


def _blob_json(oci_dir: Path, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (oci_dir / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    )
    return data


def _skopeo_inspect(transport_ref: str) -> dict[str, Any]:
    tls = ["--tls-verify=false"] if transport_ref.startswith("docker://") else []
    argv = ["skopeo", "inspect", *tls, transport_ref]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.parametrize("name", NAMES)
def test_registry_serves_image(testbed: Any, name: str) -> None:
    img = testbed.image(name)
    host, repo, tag = _split(img.ref)
    assert host == "127.0.0.1:5000"
    assert tag == RECIPES[name]["tag"]
    status, headers, body = _get(f"http://{host}/v2/{repo}/manifests/{tag}", MANIFEST_ACCEPT)
    assert status == 200, body[:300]
    assert headers["Docker-Content-Digest"] == img.digest
    assert _sha256(body) == img.digest
    manifest = json.loads(body)
    assert manifest["mediaType"] == OCI_MANIFEST
    # by digest too, and every blob the manifest names is there with the right bytes
    status, _, by_digest = _get(f"http://{host}/v2/{repo}/manifests/{img.digest}", MANIFEST_ACCEPT)
    assert status == 200 and by_digest == body
    status, _, config_bytes = _get(f"http://{host}/v2/{repo}/blobs/{manifest['config']['digest']}")
    assert status == 200 and _sha256(config_bytes) == manifest["config"]["digest"]
    config = json.loads(config_bytes)
    assert config["config"]["Labels"].items() >= RECIPES[name]["config"]["Labels"].items()
    assert config["rootfs"]["diff_ids"] and len(config["rootfs"]["diff_ids"]) == len(
        manifest["layers"]
    )
    for layer in manifest["layers"]:
        status, headers, _ = _get(f"http://{host}/v2/{repo}/blobs/{layer['digest']}", method="HEAD")
        assert status == 200
        assert int(headers["Content-Length"]) == layer["size"]
    status, _, tags = _get(f"http://{host}/v2/{repo}/tags/list")
    assert status == 200 and tag in json.loads(tags)["tags"]


def test_registry_needs_accept_header_for_oci_manifests(testbed: Any) -> None:
    """distribution 2.8 answers 404 (MANIFEST_UNKNOWN) to an OCI manifest requested
    without an Accept header naming the OCI media type; clients must send it."""
    host, repo, tag = _split(testbed.image("busybox").ref)
    status, _, body = _get(f"http://{host}/v2/{repo}/manifests/{tag}")
    assert status == 404, body[:300]
    status, _, _ = _get(f"http://{host}/v2/{repo}/manifests/{tag}", OCI_MANIFEST)
    assert status == 200


@pytest.mark.parametrize("name", NAMES)
def test_saved_formats_match_the_registry(testbed: Any, name: str) -> None:
    img = testbed.image(name)
    tag = _split(img.ref)[2]
    labels = RECIPES[name]["config"]["Labels"]
    env = RECIPES[name]["config"]["Env"]
    remote = _skopeo_inspect(f"docker://{img.ref}")
    assert remote["Digest"] == img.digest
    for transport_ref in (
        f"oci:{img.oci_dir}:{tag}",
        f"oci-archive:{img.oci_archive}",
        f"docker-archive:{img.docker_archive}",
    ):
        info = _skopeo_inspect(transport_ref)
        assert info["Labels"].items() >= labels.items(), transport_ref
        assert info["Env"] == env, transport_ref
        assert len(info["Layers"]) == len(remote["Layers"]), transport_ref
    # the OCI layout and the oci-archive carry exactly the manifest the registry serves
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{img.oci_dir}:{tag}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert _sha256(raw) == img.digest
    assert [layer["digest"] for layer in json.loads(raw)["layers"]] == remote["Layers"]
    # the docker-archive is tagged with the registry reference
    with tarfile.open(img.docker_archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        assert json.load(member)[0]["RepoTags"] == [img.ref]


def test_image_configs(testbed: Any) -> None:
    busybox = _oci_config(testbed.image("busybox").oci_dir)["config"]
    assert "GREETING=hello world" in busybox["Env"]
    assert busybox["Entrypoint"] == ["/usr/local/bin/entry.sh"]
    assert busybox["Cmd"] == ["default", "cmd"]
    assert busybox["WorkingDir"] == "/work/not-in-layers"
    py = _oci_config(testbed.image("debian-python").oci_dir)
    assert py["config"]["Entrypoint"] == ["python3"]
    assert py["created"] == "2024-01-01T00:00:00Z"
    assert len(py["rootfs"]["diff_ids"]) == 2
    mpi = _oci_config(testbed.image("mpi").oci_dir)["config"]["Labels"]
    assert mpi["org.hpcbridge.mpi"] == "openmpi,mpich"
    host_ompi = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libopenmpi3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert mpi["org.hpcbridge.package.libopenmpi3"] == host_ompi


def _layer_names(oci_dir: Path, digest: str) -> list[str]:
    path = oci_dir / "blobs" / "sha256" / digest.split(":")[1]
    with gzip.open(path) as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        return [m.name for m in tar]


def test_whiteout_image_layers(testbed: Any) -> None:
    """whiteout = debian-python's two layers + one deleting files + one opaque dir."""
    wo = testbed.image("whiteout")
    index = json.loads((wo.oci_dir / "index.json").read_text())
    manifest = _blob_json(wo.oci_dir, index["manifests"][0]["digest"])
    py = testbed.image("debian-python")
    py_index = json.loads((py.oci_dir / "index.json").read_text())
    py_manifest = _blob_json(py.oci_dir, py_index["manifests"][0]["digest"])
    assert manifest["layers"][:2] == py_manifest["layers"]
    assert len(manifest["layers"]) == 4
    third = _layer_names(wo.oci_dir, manifest["layers"][2]["digest"])
    assert {"etc/.wh.issue", "usr/share/doc/.wh.python3", "usr/bin/.wh.pydoc3"} <= set(third)
    assert {"usr/local/games", "etc/motd/inside.txt", "opt/hpcb/hardlink-b"} <= set(third)
    assert max(len(n) for n in third) > 100
    fourth = _layer_names(wo.oci_dir, manifest["layers"][3]["digest"])
    assert "etc/skel/.wh..wh..opq" in fourth and "etc/skel/hpcb-opaque.txt" in fourth
    # the python layer is a diff: no base files, but python3 and the dpkg database
    second = set(_layer_names(py.oci_dir, py_manifest["layers"][1]["digest"]))
    assert "usr/bin/python3.11" in second and "var/lib/dpkg/status" in second
    assert "bin/bash" not in second and "usr/bin/bash" not in second


def test_layers_are_deterministic_tars(testbed: Any) -> None:
    """Sorted names, one fixed mtime, numeric owners without names."""
    img = testbed.image("busybox")
    index = json.loads((img.oci_dir / "index.json").read_text())
    manifest = _blob_json(img.oci_dir, index["manifests"][0]["digest"])
    path = img.oci_dir / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    with gzip.open(path) as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        members = list(tar)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {1704067200}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert "bin/busybox" in names and "usr/local/bin/entry.sh" in names
    assert not any(n.startswith("work") for n in names)  # WorkingDir is not in the layers


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_images_pushed_again_to_an_empty_registry(testbed: Any, tmp_path: Path) -> None:
    """After the registry's storage is lost, ensure_images pushes the cached images again
    (no rebuild) with the same manifest digests; a second call pushes nothing."""
    from tests.testbed.images import ensure_images
    from tests.testbed.registry import manifest_digest, start_registry, stop_registry

    addr = f"127.0.0.1:{_free_port()}"
    pid = start_registry(tmp_path, tmp_path, addr)
    try:
        names = ["busybox", "whiteout"]
        assert all(manifest_digest(f"hpcb/{n}", RECIPES[n]["tag"], addr) is None for n in names)
        got = ensure_images(testbed.cache_dir, tmp_path, addr, names=names)
        for n in names:
            assert got[n]["digest"] == testbed.image(n).digest
            assert manifest_digest(f"hpcb/{n}", RECIPES[n]["tag"], addr) == got[n]["digest"]
        uploads = sorted((tmp_path / "registry").rglob("data"))
        again = ensure_images(testbed.cache_dir, tmp_path, addr, names=names)
        assert again == got
        assert sorted((tmp_path / "registry").rglob("data")) == uploads
    finally:
        stop_registry(pid)


def test_busybox_variants(testbed: Any) -> None:
    """busybox is also served as a Docker schema 2 manifest, an OCI index and a Docker
    manifest list (amd64 = the busybox image, arm64 = same layers, arm64 config), with
    zstd and with uncompressed layers, and saved as an OCI layout naming the index."""
    variants = testbed.state["images"]["busybox"]["variants"]
    busybox = testbed.image("busybox")
    assert set(variants) == {"docker", "index", "docker-list", "zstd", "uncompressed"}
    for v in variants.values():
        host, repo, tag = _split(v["ref"])
        status, headers, body = _get(f"http://{host}/v2/{repo}/manifests/{tag}", MANIFEST_ACCEPT)
        assert status == 200
        assert headers["Content-Type"] == v["media_type"]
        assert _sha256(body) == v["digest"] == headers["Docker-Content-Digest"]
    assert variants["index"]["platforms"]["linux/amd64"] == busybox.digest
    for kind, media_type in (
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("uncompressed", "application/vnd.oci.image.layer.v1.tar"),
    ):
        tag = variants[kind]["tag"]
        manifest = json.loads(
            _get(f"http://127.0.0.1:5000/v2/hpcb/busybox/manifests/{tag}", MANIFEST_ACCEPT)[2]
        )
        assert [la["mediaType"] for la in manifest["layers"]] == [media_type]
        status, _, blob = _get(
            f"http://127.0.0.1:5000/v2/hpcb/busybox/blobs/{manifest['layers'][0]['digest']}"
        )
        assert status == 200 and _sha256(blob) == manifest["layers"][0]["digest"]
    docker = json.loads(
        _get(
            f"http://{_split(variants['docker']['ref'])[0]}/v2/hpcb/busybox/manifests/{variants['docker']['tag']}",
            MANIFEST_ACCEPT,
        )[2]
    )
    oci = json.loads(
        _get(f"http://127.0.0.1:5000/v2/hpcb/busybox/manifests/{busybox.digest}", MANIFEST_ACCEPT)[
            2
        ]
    )
    assert docker["config"]["digest"] == oci["config"]["digest"]
    assert [la["digest"] for la in docker["layers"]] == [la["digest"] for la in oci["layers"]]
    for ref in (variants["index"]["ref"], variants["docker-list"]["ref"]):
        assert _skopeo_inspect(f"docker://{ref}")["Architecture"] == "amd64"
        arm = subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                "--override-arch",
                "arm64",
                f"docker://{ref}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(arm.stdout)["Architecture"] == "arm64"
    layout = variants["index"]["oci_dir"]
    assert _skopeo_inspect(f"oci:{layout}")["Labels"]["org.hpcbridge.test"] == "busybox"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:multi"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert _sha256(raw) == variants["index"]["digest"]
