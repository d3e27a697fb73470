"""A small HTTP/1.1 client on :mod:`http.client` for the registry protocol.

Why not ``requests``: importing it costs ~90 ms, which alone is most of the
budget of a warm-cache ``hpcbridge convert`` (one HEAD request, then a stat).
The registry protocol needs little: keep-alive connections, redirects (blob
downloads are redirected to object stores; credentials are dropped when the
host changes), proxies from the environment, TLS with the system CA store, and
retries with exponential backoff on 429/5xx and connection errors.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Callable, Optional
from urllib.parse import unquote, urljoin, urlsplit

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.head import USER_AGENT
from hpcbridge.images.refs import is_loopback_host

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class TransportError(ImageError):
    """The network failed after all retries."""


class Response:
    """A response whose body is read on demand (``read``) or all at once (``content``)."""

    def __init__(
        self, url: str, raw: http.client.HTTPResponse, drop: Callable[[], None] = lambda: None
    ) -> None:
        self.url = url
        self._drop = drop
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._raw = raw

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def read(self, size: int = -1) -> bytes:
        # http.client reads to EOF (i.e. until a keep-alive server times out) on read(-1).
        return self._raw.read() if size < 0 else self._raw.read(size)

    def content(self, limit: int = 64 * 1024 * 1024) -> bytes:
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise ImageError(f"response from {self.url} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        self._raw.close()

    def abandon(self) -> None:
        """Close after a failure mid-body: the connection cannot be reused."""
        self._raw.close()
        self._drop()


def _proxy_for(scheme: str, host: str) -> Optional[str]:
    names = (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
    if not any(os.environ.get(n) for n in names):
        return None
    import urllib.request  # lazily: only when a proxy is configured

    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(scheme) or (
        urllib.request.getproxies_environment().get("all")
    )


class Transport:
    """Pooled connections per (scheme, host); ``request`` retries and follows redirects."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        verify_tls: bool = True,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.verify_tls = verify_tls
        # Connections are per thread: blobs are downloaded on several threads at once.
        self._conns: dict[tuple[int, str, str], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        self._ssl: Optional[ssl.SSLContext] = None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context()
            if not self.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (threading.get_ident(), scheme, netloc)
        conn = self._conns.get(key)
        if conn is not None:
            return conn
        host = urlsplit(f"//{netloc}").hostname or netloc
        proxy = None if _is_loopback(host) else _proxy_for(scheme, host)
        if proxy:
            p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            proxy_headers = {}
            if p.username:
                creds = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(creds).decode()
            if scheme == "https":
                # CONNECT through the proxy, then TLS to the registry.
                conn = http.client.HTTPSConnection(
                    p.hostname or "", p.port or 80, timeout=self.timeout, context=self._context()
                )
                conn.set_tunnel(netloc, headers=proxy_headers)
            else:
                conn = _ProxiedHTTPConnection(p.hostname or "", p.port or 80, timeout=self.timeout)
                conn.target_netloc = netloc
                conn.proxy_headers = proxy_headers
        elif scheme == "https":
            conn = http.client.HTTPSConnection(
                netloc, timeout=self.timeout, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
        with self._lock:
            self._conns[key] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        with self._lock:
            conn = self._conns.pop((threading.get_ident(), scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _drop_key(self, key: tuple[int, str, str]) -> None:
        with self._lock:
            conn = self._conns.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            conn.close()

    def _once(self, method: str, url: str, headers: Mapping[str, str]) -> Response:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn = self._connection(parts.scheme, parts.netloc)
        key = (threading.get_ident(), parts.scheme, parts.netloc)
        all_headers = {"User-Agent": USER_AGENT, **headers}
        try:
            conn.request(method, target, headers=all_headers)
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException):
            self._drop(parts.scheme, parts.netloc)
            raise
        if raw.getheader("Connection", "").lower() == "close":
            # The server closes after this response; do not reuse the connection.
            with self._lock:
                self._conns.pop((threading.get_ident(), parts.scheme, parts.netloc), None)
        return Response(url, raw, lambda: self._drop_key(key))

    def delay(self, attempt: int, retry_after: str = "") -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_backoff)
        base = min(self.backoff * float(2 ** (attempt - 1)), self.max_backoff)
        return base * (0.75 + 0.5 * random.random())

    def request(
        self,
        method: str,
        url: str,
        headers: Optional[Mapping[str, str]] = None,
        *,
        follow_redirects: bool = True,
    ) -> Response:
        """Send a request; retry on connection errors and 429/5xx; follow redirects.

        The caller must read or ``close()`` the returned response.  Authorization
        headers are not sent to a different host after a redirect.
        """
        hdrs = dict(headers or {})
        origin = urlsplit(url).netloc
        redirects = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._once(method, url, hdrs)
            except (OSError, http.client.HTTPException, socket.timeout) as exc:
                if attempt > self.retries:
                    raise TransportError(
                        f"cannot reach {urlsplit(url).netloc}: {exc}",
                        "check the registry address, your network or proxy settings",
                    ) from exc
                wait = self.delay(attempt)
                log.debug("%s %s failed (%s); retry %d in %.1fs", method, url, exc, attempt, wait)
                self.sleep(wait)
                continue
            if resp.status in RETRY_STATUSES and attempt <= self.retries:
                wait = self.delay(attempt, resp.header("Retry-After"))
                resp.read()
                resp.close()
                log.debug("%s %s -> %d; retry %d in %.1fs", method, url, resp.status, attempt, wait)
                self.sleep(wait)
                continue
            if follow_redirects and resp.status in REDIRECT_STATUSES:
                location = resp.header("Location")
                resp.read()
                resp.close()
                redirects += 1
                if not location or redirects > 10:
                    raise TransportError(f"too many or empty redirects from {url}")
                url = urljoin(url, location)
                if urlsplit(url).netloc != origin:
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                if resp.status == 303:
                    method = "GET"
                attempt = 0
                continue
            return resp


def _is_loopback(host: str) -> bool:
    return is_loopback_host(host if ":" not in host or host.startswith("[") else f"[{host}]")


class _ProxiedHTTPConnection(http.client.HTTPConnection):
    """Plain-http request through a forward proxy: absolute URL in the request line."""

    target_netloc = ""
    proxy_headers: dict[str, str] = {}  # noqa: RUF012

    def putrequest(
        self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False
    ) -> None:
        super().putrequest(
            method,
            f"http://{self.target_netloc}{url}",
            skip_host=True,
            skip_accept_encoding=skip_accept_encoding,
        )
        self.putheader("Host", self.target_netloc)
        for key, value in self.proxy_headers.items():
            self.putheader(key, value)
