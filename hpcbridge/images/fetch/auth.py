"""Registry authentication: challenges, credentials, bearer tokens.

* :func:`parse_challenges` reads ``WWW-Authenticate`` (pure).
* :func:`find_credentials` looks, in this order, at ``HPCBRIDGE_REGISTRY_USERNAME``/
  ``_PASSWORD``, ``APPTAINER_DOCKER_USERNAME``/``_PASSWORD`` (also ``SINGULARITY_``),
  ``$REGISTRY_AUTH_FILE``, ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``
  (``auths`` entries, ``credHelpers``/``credsStore`` helpers).
* :class:`Authenticator` answers a 401: anonymous or credentialed bearer-token flow
  (``Bearer realm=...,service=...,scope=...``) or HTTP Basic; tokens are cached per scope.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode, urlsplit

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.transport import Transport

log = logging.getLogger(__name__)

HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # where they came from, for messages

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235): ``Scheme k=v, k="v", Scheme2 ...``."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Optional[Challenge] = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            # key=value
            j += 1
            while j < n and header[j] in " \t":
                j += 1
            if j < n and header[j] == '"':
                j += 1
                chars: list[str] = []
                while j < n and header[j] != '"':
                    if header[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(header[j])
                    j += 1
                value = "".join(chars)
                j += 1
            else:
                vstart = j
                while j < n and header[j] not in " \t,":
                    j += 1
                value = header[vstart:j]
            current.params[token.lower()] = value
            i = j
        else:
            current = Challenge(token.lower(), {})
            out.append(current)
    return out


def registry_keys(registry: str) -> list[str]:
    """Keys under which a docker config may store credentials of ``registry``."""
    if registry in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        return list(HUB_KEYS)
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def _normalise_key(key: str) -> str:
    if "://" in key:
        key = urlsplit(key).netloc
    return key.rstrip("/")


def _from_config(path: Path, registry: str, environ: Mapping[str, str]) -> Optional[Credentials]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ImageError(
            f"cannot read registry credentials file {path}: {exc}", "fix or remove the file"
        ) from exc
    if not isinstance(data, dict):
        return None
    wanted = {_normalise_key(k) for k in registry_keys(registry)}
    auths = data.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _normalise_key(str(key)) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ImageError(
                    f"the 'auth' entry for {key!r} in {path} is not base64 user:password"
                ) from exc
            return Credentials(user, password, str(path))
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")), str(path))
    helpers = data.get("credHelpers") or {}
    helper = None
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _normalise_key(str(key)) in wanted:
                helper = str(name)
    if helper is None and data.get("credsStore"):
        helper = str(data["credsStore"])
    if helper:
        return _from_helper(helper, registry_keys(registry)[0], environ)
    return None


def _from_helper(helper: str, server: str, environ: Mapping[str, str]) -> Optional[Credentials]:
    from hpcbridge import runner
    from hpcbridge.errors import CommandError

    exe = f"docker-credential-{helper}"
    if runner.which(exe, environ.get("PATH")) is None:
        log.debug("credential helper %s not installed; ignoring", exe)
        return None
    try:
        done = runner.run([exe, "get"], input=server, check=False, timeout=30)
    except CommandError as exc:
        raise ImageError(f"credential helper {exe} failed: {exc}") from exc
    if not done.ok:
        return None  # the helper knows nothing about this server
    try:
        answer = json.loads(done.stdout)
        return Credentials(str(answer["Username"]), str(answer["Secret"]), exe)
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"credential helper {exe} answered something unreadable") from exc


def find_credentials(
    registry: str, environ: Optional[Mapping[str, str]] = None
) -> Optional[Credentials]:
    """Credentials for ``registry`` (``docker.io``, ``ghcr.io``, ``host:port``) or None."""
    env = os.environ if environ is None else environ
    for prefix in ("HPCBRIDGE_REGISTRY", "APPTAINER_DOCKER", "SINGULARITY_DOCKER"):
        user = env.get(f"{prefix}_USERNAME")
        if user:
            return Credentials(user, env.get(f"{prefix}_PASSWORD", ""), f"${prefix}_USERNAME")
    files: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("DOCKER_CONFIG"):
        files.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    home = env.get("HOME")
    if home:
        files.append(Path(home) / ".docker" / "config.json")
    for path in files:
        creds = _from_config(path, registry, env)
        if creds is not None:
            return creds
    return None


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Turns a 401 challenge into an ``Authorization`` header (and caches tokens)."""

    def __init__(
        self, registry: str, credentials: Optional[Credentials], transport: Transport
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.transport = transport
        self._tokens: dict[str, _Token] = {}
        self._header_by_scope: dict[str, str] = {}

    def header_for(self, scope: str) -> Optional[str]:
        """The Authorization header known to work for ``scope``, if any."""
        hdr = self._header_by_scope.get(scope)
        if hdr is None:
            return None
        tok = self._tokens.get(scope)
        if tok is not None and tok.expires < time.time():
            return None
        return hdr

    def answer(self, www_authenticate: str, scope: str) -> str:
        """Return the Authorization header answering the challenge (may fetch a token)."""
        challenges = parse_challenges(www_authenticate)
        for ch in challenges:
            if ch.scheme == "bearer" and ch.params.get("realm"):
                hdr = "Bearer " + self._fetch_token(ch, scope)
                self._header_by_scope[scope] = hdr
                return hdr
        for ch in challenges:
            if ch.scheme == "basic":
                if self.credentials is None:
                    raise self.denied(None)
                hdr = self.credentials.basic_header()
                self._header_by_scope[scope] = hdr
                return hdr
        raise ImageError(
            f"registry {self.registry} asks for an unsupported authentication: {www_authenticate!r}"
        )

    def denied(self, what: Optional[str]) -> ImageError:
        if self.credentials is None:
            return ImageError(
                f"registry {self.registry} requires authentication"
                + (f" for {what}" if what else ""),
                "log in with `docker login` or set HPCBRIDGE_REGISTRY_USERNAME and "
                "HPCBRIDGE_REGISTRY_PASSWORD; or check the image name",
            )
        return ImageError(
            f"registry {self.registry} refused the credentials from {self.credentials.source}"
            + (f" for {what}" if what else ""),
            "check the user name, password or token, and that the image name is right",
        )

    def _fetch_token(self, ch: Challenge, scope: str) -> str:
        realm = ch.params["realm"]
        query = {"service": ch.params["service"]} if ch.params.get("service") else {}
        query["scope"] = ch.params.get("scope") or scope
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        if urlsplit(realm).scheme not in ("https", "http"):
            raise ImageError(f"registry {self.registry} names an invalid token realm {realm!r}")
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
        resp = self.transport.request("GET", url, headers)
        body = resp.content(1024 * 1024)
        if resp.status in (401, 403):
            raise self.denied(query["scope"])
        if resp.status != 200:
            raise ImageError(
                f"token service {urlsplit(realm).netloc} answered HTTP {resp.status} "
                f"for {self.registry}"
            )
        try:
            data = json.loads(body)
            token = str(data.get("token") or data.get("access_token") or "")
        except (ValueError, AttributeError) as exc:
            raise ImageError(f"token service {urlsplit(realm).netloc} sent no JSON") from exc
        if not token:
            raise ImageError(f"token service {urlsplit(realm).netloc} sent no token")
        lifetime = float(data.get("expires_in") or 60)
        self._tokens[scope] = _Token(token, time.time() + max(lifetime - 10, 5))
        return token
