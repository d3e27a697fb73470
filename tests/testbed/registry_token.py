"""A tiny bearer-token server for docker-registry's `auth: token` mode, so the anonymous
(and basic-credential) bearer flows of public registries (Docker Hub, ghcr.io, quay.io)
run against the real distribution 2.8 on 127.0.0.1.

The registry answers 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``;
a client GETs ``realm?service=...&scope=...`` here and gets a JWT (RS256, signed with
``openssl``) whose ``kid`` is the libtrust key ID of the certificate the registry trusts.
Runs in a thread of the calling process (a test fixture); every token request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SERVICE = "hpcbridge-testbed"
ISSUER = "hpcbridge-testbed-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(der_public_key: bytes) -> str:
    """docker/libtrust's key ID: base32 of the first 240 bits of sha256(DER SPKI),
    in colon-separated groups of four."""
    b32 = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def make_key(workdir: Path) -> tuple[Path, Path, str]:
    """RSA key + self-signed certificate (the registry's rootcertbundle) and the key id."""
    workdir.mkdir(parents=True, exist_ok=True)
    key, cert = workdir / "token.key", workdir / "token.crt"
    if not key.exists() or not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "30", "-subj", "/CN=hpcbridge-testbed-token"],
            check=True, capture_output=True,
        )  # fmt: skip
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, cert, libtrust_key_id(der)


class TokenServer:
    """Issues pull tokens. ``users`` None: anyone (anonymous) gets a token; otherwise only
    requests with matching HTTP basic credentials do (others get 401)."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        self.key, self.cert, self.kid = make_key(Path(workdir))
        self.users = users
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/token"

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def registry_auth_config(self) -> str:
        """The `auth:` section of the registry's config.yml."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.cert}\n"
        )

    def token(self, scopes: list[str], subject: str = "") -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"path": url.path, "query": query, "authorization": auth})
                user = ""
                if server.users is not None:
                    ok = False
                    if auth.startswith("Basic "):
                        name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                        ok = server.users.get(name) == pw
                        user = name
                    if not ok:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="token"')
                        self.end_headers()
                        return
                tok = server.token(query.get("scope", []), user)
                body = json.dumps({"token": tok, "access_token": tok, "expires_in": 600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
