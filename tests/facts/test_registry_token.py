"""docker-registry in bearer-token mode with the testbed's token server: the anonymous
token flow of public registries (and a token server that wants basic credentials), met
by skopeo and by the real Apptainer."""

from __future__ import annotations

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
from tests.testbed.registry_token import SERVICE, TokenServer


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def token_registry(
    testbed: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, TokenServer]]:
    state = tmp_path_factory.mktemp("token-registry")
    with TokenServer(state / "keys") as tokens:
        addr = f"127.0.0.1:{_free_port()}"
        pid = start_registry(
            state, testbed.cache_dir, addr, name="token", extra_config=tokens.registry_auth_config()
        )
        try:
            yield addr, tokens
        finally:
            stop_registry(pid)


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_anonymous_bearer_flow_by_hand(
    testbed: Any, token_registry: tuple[str, TokenServer]
) -> None:
    addr, tokens = token_registry
    img = testbed.image("busybox")
    repo, tag = img.ref.split("/", 1)[1].rsplit(":", 1)
    url = f"http://{addr}/v2/{repo}/manifests/{tag}"
    status, headers, _ = _get(url, {"Accept": MANIFEST_ACCEPT})
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge == (
        f'Bearer realm="{tokens.realm}",service="{SERVICE}",scope="repository:{repo}:pull"'
    )
    status, _, body = _get(f"{tokens.realm}?service={SERVICE}&scope=repository:{repo}:pull", {})
    assert status == 200
    token = json.loads(body)["token"]
    status, headers, _ = _get(url, {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"})
    assert status == 200 and headers["Docker-Content-Digest"] == img.digest
    status, _, _ = _get(url, {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}x"})
    assert status == 401


def test_skopeo_and_apptainer_follow_the_token_flow(
    testbed: Any, scratch: Any, token_registry: tuple[str, TokenServer]
) -> None:
    addr, tokens = token_registry
    ref = testbed.image("busybox").ref.replace("127.0.0.1:5000", addr)
    before = len(tokens.requests)
    done = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["Digest"] == testbed.image("busybox").digest
    assert len(tokens.requests) > before
    out = scratch("token-build") / "bb.sif"
    before = len(tokens.requests)
    testbed.run_as_user(["apptainer", "build", "--no-https", out, f"docker://{ref}"], timeout=300)
    assert len(tokens.requests) > before
    assert all(r["authorization"] == "" for r in tokens.requests[before:])  # anonymous
    done = testbed.run_as_user(["apptainer", "exec", out, "sh", "-c", "echo $GREETING"])
    assert done.stdout.strip() == "hello world"


def test_token_server_that_wants_credentials(
    testbed: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Private repositories: the token endpoint itself asks for basic credentials."""
    state = tmp_path_factory.mktemp("token-creds")
    with TokenServer(state / "keys", users={"alice": "pa ss"}) as tokens:
        addr = f"127.0.0.1:{_free_port()}"
        pid = start_registry(
            state, testbed.cache_dir, addr, name="token", extra_config=tokens.registry_auth_config()
        )
        try:
            ref = f"docker://{testbed.image('busybox').ref.replace('127.0.0.1:5000', addr)}"
            base = ["skopeo", "inspect", "--tls-verify=false"]
            denied = subprocess.run([*base, ref], capture_output=True, text=True, timeout=60)
            assert denied.returncode != 0
            ok = subprocess.run(
                [*base, "--creds", "alice:pa ss", ref], capture_output=True, text=True, timeout=60
            )
            assert ok.returncode == 0, ok.stderr
            assert any(r["authorization"].startswith("Basic ") for r in tokens.requests)
        finally:
            stop_registry(pid)
