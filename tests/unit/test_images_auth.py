"""WWW-Authenticate parsing and credential lookup (pure or file-based)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.auth import Challenge, find_credentials, parse_challenges


def test_bearer_challenge() -> None:
    hdr = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    assert parse_challenges(hdr) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull",
            },
        )
    ]


def test_challenge_quoting_tokens_and_several_schemes() -> None:
    hdr = 'Basic realm="a \\"quoted\\", realm" , Bearer realm=https://x/t,service=svc, error="insufficient_scope"'
    got = parse_challenges(hdr)
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].params == {"realm": 'a "quoted", realm'}
    assert got[1].params == {
        "realm": "https://x/t",
        "service": "svc",
        "error": "insufficient_scope",
    }
    assert parse_challenges("") == []
    assert parse_challenges("Negotiate") == [Challenge("negotiate", {})]


def _auth(user: str, pw: str) -> str:
    return base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_env_credentials_win_in_order(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "HPCBRIDGE_REGISTRY_USERNAME": "hb",
        "HPCBRIDGE_REGISTRY_PASSWORD": "p1",
        "APPTAINER_DOCKER_USERNAME": "ap",
        "APPTAINER_DOCKER_PASSWORD": "p2",
    }
    c = find_credentials("ghcr.io", env)
    assert c is not None and (c.username, c.password) == ("hb", "p1")
    del env["HPCBRIDGE_REGISTRY_USERNAME"]
    c = find_credentials("ghcr.io", env)
    assert c is not None and (c.username, c.password, c.source) == (
        "ap",
        "p2",
        "$APPTAINER_DOCKER_USERNAME",
    )


def test_docker_config_json_and_hub_aliases(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hubpw")},
                    "ghcr.io": {"auth": _auth("gh", "tok:with:colons")},
                    "https://reg.example.org:8443": {"username": "u", "password": "p"},
                }
            }
        )
    )
    env = {"HOME": str(tmp_path)}
    hub = find_credentials("docker.io", env)
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hubpw")
    gh = find_credentials("ghcr.io", env)
    assert gh is not None and gh.password == "tok:with:colons"
    ex = find_credentials("reg.example.org:8443", env)
    assert ex is not None and (ex.username, ex.password) == ("u", "p")
    assert find_credentials("quay.io", env) is None


def test_registry_auth_file_before_docker_config(tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"ghcr.io": {"auth": _auth("podman", "x")}}}))
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": _auth("docker", "y")}}})
    )
    c = find_credentials("ghcr.io", {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(auth_file)})
    assert c is not None and c.username == "podman" and c.source == str(auth_file)


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text("{not json")
    with pytest.raises(ImageError, match="cannot read registry credentials file"):
        find_credentials("ghcr.io", {"HOME": str(tmp_path)})


def test_missing_cred_helper_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"credsStore": "nonexistent-xyz"}))
    assert find_credentials("ghcr.io", {"HOME": str(tmp_path), "PATH": str(tmp_path)}) is None
