"""One HEAD request for a tag over plain http, without http.client: the warm path.

Converting a tag whose image is cached costs one HEAD (the tag may have moved)
and a ``stat``.  For a registry spoken to over plain http (loopback, or listed
as insecure) and not through a proxy, this module sends that HEAD on a bare
socket, so the warm path never imports :mod:`http.client`, :mod:`ssl` and the
rest of the registry client (tens of milliseconds of a ~0.1 s command).  Any
answer but a 200 with a digest (a 401 asking for a token, a redirect, an
error, a timeout) returns None and the caller asks again with the full client
(:class:`~hpcbridge.images.fetch.registry.RegistryClient`), which handles all
of them.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from hpcbridge.images.fetch.mediatypes import ACCEPT  # as the full client sends it
from hpcbridge.images.refs import is_loopback_host

USER_AGENT = "hpcbridge (+https://github.com/hpcbridge)"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def _split(host: str) -> tuple[str, int]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else 80
    name, _, port = host.partition(":")
    return name, int(port) if port else 80


def plain_head(
    host: str, repository: str, reference: str, timeout: float = 10.0
) -> Optional[tuple[str, str]]:
    """``(digest, media type)`` of ``repository:reference`` on ``http://host``, or None."""
    if not is_loopback_host(host) and any(os.environ.get(v) for v in _PROXY_VARS):
        return None  # a proxy may be needed: the full client knows how
    request = (
        f"HEAD /v2/{repository}/manifests/{reference} HTTP/1.1\r\n"
        f"Host: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: {ACCEPT}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    data = b""
    try:
        sock = _connect(*_split(host), timeout)
        try:
            sock.sendall(request)
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
    except (OSError, ValueError):
        return None
    return parse_head(data, reference)


def _connect(host: str, port: int, timeout: float) -> Any:
    """A connected TCP socket, made with ``_socket`` (the C module): ``socket.py`` adds
    nothing needed here and costs a couple of milliseconds to import."""
    import _socket

    error: OSError = OSError(f"cannot resolve {host}")
    # bytes: a str host would load the idna codec (a non-ASCII name raises, and the
    # caller asks the full client instead)
    name = host.encode("ascii")
    for family, kind, proto, _, addr in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def parse_head(data: bytes, reference: str) -> Optional[tuple[str, str]]:
    """The digest and media type of a 200 answer's headers, else None (pure)."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    digest = headers.get("docker-content-digest", "")
    if not _DIGEST.match(digest):
        return None
    if reference.startswith("sha256:") and digest != reference:
        return None  # the full client reports the mismatch
    return digest, headers.get("content-type", "").split(";")[0].strip()
