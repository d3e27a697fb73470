"""A second docker-registry over the same storage, asking for HTTP basic credentials
(htpasswd): what convert's basic-auth path and `apptainer build` with credentials meet."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.registry import MANIFEST_ACCEPT, start_registry, stop_registry


@pytest.fixture
def scratch(testbed: Any) -> Iterator[Callable[[str], Path]]:
    """testbed.user_dir(name), removed again after the test (SIFs and sandboxes are big)."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(testbed.user_dir(name))
        return made[-1]

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


USER, PASSWORD = "hpcb-reader", "s3cret pass:word"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def auth_registry(testbed: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    addr = f"127.0.0.1:{_free_port()}"
    state = tmp_path_factory.mktemp("auth-registry")
    pid = start_registry(state, testbed.cache_dir, addr, auth=(USER, PASSWORD), name="auth")
    try:
        yield addr
    finally:
        stop_registry(pid)


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_basic_auth_challenge_and_access(testbed: Any, auth_registry: str) -> None:
    img = testbed.image("busybox")
    repo_tag = img.ref.split("/", 1)[1]
    repo, tag = repo_tag.rsplit(":", 1)
    url = f"http://{auth_registry}/v2/{repo}/manifests/{tag}"
    status, headers, _ = _get(url, {"Accept": MANIFEST_ACCEPT})
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="hpcbridge-testbed"'
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    status, headers, body = _get(
        url, {"Accept": MANIFEST_ACCEPT, "Authorization": f"Basic {token}"}
    )
    assert status == 200
    assert headers["Docker-Content-Digest"] == img.digest
    assert json.loads(body)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    bad = base64.b64encode(f"{USER}:wrong".encode()).decode()
    status, _, _ = _get(url, {"Accept": MANIFEST_ACCEPT, "Authorization": f"Basic {bad}"})
    assert status == 401


def test_skopeo_with_and_without_credentials(testbed: Any, auth_registry: str) -> None:
    ref = testbed.image("busybox").ref.replace("127.0.0.1:5000", auth_registry)
    base = ["skopeo", "inspect", "--tls-verify=false"]
    denied = subprocess.run([*base, f"docker://{ref}"], capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0
    ok = subprocess.run(
        [*base, "--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(ok.stdout)["Digest"] == testbed.image("busybox").digest


def test_apptainer_build_with_credentials(testbed: Any, scratch: Any, auth_registry: str) -> None:
    """Apptainer takes registry credentials from APPTAINER_DOCKER_USERNAME/PASSWORD."""
    ref = testbed.image("busybox").ref.replace("127.0.0.1:5000", auth_registry)
    out_dir: Path = scratch("auth-build")
    argv = ["apptainer", "build", "--no-https", out_dir / "bb.sif", f"docker://{ref}"]
    denied = testbed.run_as_user(argv, check=False, timeout=300)
    assert denied.returncode != 0
    assert "401" in denied.stderr or "unauthorized" in denied.stderr.lower()
    creds = {"APPTAINER_DOCKER_USERNAME": USER, "APPTAINER_DOCKER_PASSWORD": PASSWORD}
    testbed.run_as_user(argv, env=creds, timeout=300)
    done = testbed.run_as_user(
        ["apptainer", "exec", out_dir / "bb.sif", "sh", "-c", "echo $GREETING"]
    )
    assert done.stdout.strip() == "hello world"
