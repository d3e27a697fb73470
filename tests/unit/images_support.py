"""Test support for the image fetch side: tiny images and a tiny in-process registry.

The registry is a real HTTP server (http.server on 127.0.0.1 in a thread) that
speaks the subset of the Registry v2 protocol hpcbridge uses, with knobs to
misbehave (auth, redirects, 503/429 bursts, corrupt or truncated blobs).  It is
the *peer* of the code under test, not a mock of it; the same code is also
tested against the real docker-registry on the testbed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(files: dict[str, bytes], *, mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    tf.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            ti.mode = 0o755 if name.startswith("bin/") else mode
            tf.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


@dataclass
class SmallImage:
    config: bytes
    layers: list[tuple[bytes, str]]  # (blob, media type)
    diff_tars: list[bytes]
    media_type: str = OCI_MANIFEST

    @property
    def manifest(self) -> bytes:
        config_type = (
            "application/vnd.oci.image.config.v1+json"
            if self.media_type == OCI_MANIFEST
            else "application/vnd.docker.container.image.v1+json"
        )
        doc = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": {
                "mediaType": config_type,
                "digest": sha(self.config),
                "size": len(self.config),
            },
            "layers": [
                {"mediaType": mt, "digest": sha(b), "size": len(b)} for b, mt in self.layers
            ],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha(self.config)

    def blobs(self) -> dict[str, bytes]:
        out = {sha(self.config): self.config}
        out.update({sha(b): b for b, _ in self.layers})
        return out


def make_image(
    layer_files: list[dict[str, bytes]],
    *,
    env: Optional[list[str]] = None,
    cmd: Optional[list[str]] = None,
    labels: Optional[dict[str, str]] = None,
    arch: str = "amd64",
    docker: bool = False,
) -> SmallImage:
    tars = [make_tar(files) for files in layer_files]
    layers = []
    for t in tars:
        blob = gzip.compress(t, mtime=0)
        mt = (
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            if docker
            else "application/vnd.oci.image.layer.v1.tar+gzip"
        )
        layers.append((blob, mt))
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {
            "Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world"],
            "Cmd": cmd or ["/bin/sh"],
            "Labels": labels or {"org.example.name": "tiny"},
            "WorkingDir": "/work",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]},
        "history": [{"created_by": "test"} for _ in tars],
    }
    return SmallImage(
        json.dumps(config, sort_keys=True).encode(),
        layers,
        tars,
        DOCKER_MANIFEST if docker else OCI_MANIFEST,
    )


def index_of(images: dict[str, SmallImage]) -> bytes:
    """An OCI index: platform text ("linux/amd64") -> image."""
    manifests = []
    for plat, img in images.items():
        os_, arch, *variant = plat.split("/")
        p: dict[str, Any] = {"os": os_, "architecture": arch}
        if variant:
            p["variant"] = variant[0]
        manifests.append(
            {
                "mediaType": img.media_type,
                "digest": img.digest,
                "size": len(img.manifest),
                "platform": p,
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


def write_oci_layout(root: Path, image: SmallImage, tag: Optional[str] = "latest") -> None:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for digest, data in {**image.blobs(), image.digest: image.manifest}.items():
        (blobs / digest[7:]).write_bytes(data)
    desc: dict[str, Any] = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": len(image.manifest),
    }
    if tag:
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))


def write_tar_of_dir(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)


def write_docker_archive(dest: Path, image: SmallImage, repo_tag: str = "tiny:latest") -> None:
    """``docker save`` layout: <hex>.json config, <hex>/layer.tar (uncompressed)."""
    cfg_hex = image.config_digest[7:]
    with tarfile.open(dest, "w") as tf:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        names = []
        for i, t in enumerate(image.diff_tars):
            name = f"{i:02d}{'0' * 62}/layer.tar"
            add(name, t)
            names.append(name)
        add(f"{cfg_hex}.json", image.config)
        add(
            "manifest.json",
            json.dumps(
                [{"Config": f"{cfg_hex}.json", "RepoTags": [repo_tag], "Layers": names}]
            ).encode(),
        )


@dataclass
class Behaviour:
    auth: str = "none"  # none | basic | bearer
    user: str = "alice"
    password: str = "s3cret"
    anonymous_token: bool = True  # bearer: hand tokens without credentials
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first (e.g. 503, 429)
    redirect_blobs: bool = False
    redirect_to: str = ""  # host[:port] of another server holding the blobs
    corrupt_blobs: bool = False
    truncate_once: set[str] = field(default_factory=set)  # digests cut short on first GET
    strict_accept: bool = True  # 404 when the Accept header lacks the manifest's type
    no_digest_header: bool = False
    slow_blobs: float = 0.0  # seconds of sleep per 64 KiB of blob
    ranges: bool = True  # answer Range requests with 206 (False: ignore them, send 200)
    cut_blobs: list[int] = field(default_factory=list)  # close after this many bytes, once each


class Registry:
    """``with Registry() as reg: reg.push("repo", "tag", image)``; ``reg.url`` = 127.0.0.1:port."""

    def __init__(self, behaviour: Optional[Behaviour] = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.tokens_issued = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def push(self, repo: str, tag: str, image: SmallImage) -> None:
        self.blobs.update(image.blobs())
        self.manifests[(repo, image.digest)] = (image.manifest, image.media_type)
        self.manifests[(repo, tag)] = (image.manifest, image.media_type)

    def push_index(self, repo: str, tag: str, images: dict[str, SmallImage]) -> str:
        for img in images.values():
            self.blobs.update(img.blobs())
            self.manifests[(repo, img.digest)] = (img.manifest, img.media_type)
        data = index_of(images)
        self.manifests[(repo, sha(data))] = (data, OCI_INDEX)
        self.manifests[(repo, tag)] = (data, OCI_INDEX)
        return sha(data)

    def requests(self, method: Optional[str] = None, path_part: str = "") -> list[str]:
        return [p for m, p, _ in self.log if (method is None or m == method) and path_part in p]

    def __enter__(self) -> Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: bytes = b"", headers: Optional[dict[str, str]] = None
            ) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _authorised(self) -> bool:
                b = reg.behaviour
                hdr = self.headers.get("Authorization", "")
                basic = "Basic " + base64.b64encode(f"{b.user}:{b.password}".encode()).decode()
                if b.auth == "none":
                    return True
                if b.auth == "basic":
                    if hdr == basic:
                        return True
                    self._send(
                        401,
                        b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                        {"WWW-Authenticate": 'Basic realm="test"'},
                    )
                    return False
                if hdr == "Bearer tok-valid":
                    return True
                realm = f"http://{reg.host}/token"
                self._send(
                    401,
                    b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                    {
                        "WWW-Authenticate": f'Bearer realm="{realm}",service="test-registry",scope="repository:x:pull"'
                    },
                )
                return False

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                b = reg.behaviour
                with reg.lock:
                    reg.log.append((self.command, self.path, dict(self.headers)))
                    status = b.fail_next.pop(0) if b.fail_next else 0
                if status:
                    self._send(status, b"busy", {"Retry-After": "0"} if status == 429 else None)
                    return
                path = self.path.split("?", 1)[0]
                if path == "/token":
                    return self._token()
                if path.startswith("/blobstore/"):
                    return self._blob(path.rsplit("/", 1)[1])
                if path == "/v2/":
                    if self._authorised():
                        self._send(200, b"{}")
                    return
                if not path.startswith("/v2/"):
                    return self._send(404)
                if not self._authorised():
                    return
                rest = path[4:]
                if "/manifests/" in rest:
                    repo, ref = rest.split("/manifests/", 1)
                    return self._manifest(repo, ref)
                if "/blobs/" in rest:
                    repo, digest = rest.split("/blobs/", 1)
                    if b.redirect_blobs:
                        host = b.redirect_to or reg.host
                        loc = f"http://{host}/blobstore/{digest}"
                        return self._send(307, b"", {"Location": loc})
                    return self._blob(digest)
                self._send(404)

            def _token(self) -> None:
                b = reg.behaviour
                basic = "Basic " + base64.b64encode(f"{b.user}:{b.password}".encode()).decode()
                hdr = self.headers.get("Authorization", "")
                if hdr and hdr != basic:
                    return self._send(401, b"bad credentials")
                if not hdr and not b.anonymous_token:
                    return self._send(401, b"credentials required")
                reg.tokens_issued += 1
                self._send(200, json.dumps({"token": "tok-valid", "expires_in": 300}).encode())

            def _manifest(self, repo: str, ref: str) -> None:
                found = reg.manifests.get((repo, ref))
                if found is None:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                data, media = found
                accept = self.headers.get("Accept", "")
                if reg.behaviour.strict_accept and media not in accept:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                headers = {"Content-Type": media}
                if not reg.behaviour.no_digest_header:
                    headers["Docker-Content-Digest"] = sha(data)
                self._send(200, data, headers)

            def _blob(self, digest: str) -> None:
                data = reg.blobs.get(digest)
                if data is None:
                    return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                if reg.behaviour.corrupt_blobs and len(data) > 0:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted and reg.behaviour.ranges:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    rng = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    self.send_response(206)
                    self.send_header("Content-Range", rng)
                else:
                    self.send_response(200)
                body = data[start:]
                with reg.lock:
                    cut = reg.behaviour.cut_blobs.pop(0) if reg.behaviour.cut_blobs else None
                if cut is not None:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if start or (wanted and reg.behaviour.ranges):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if digest in reg.behaviour.truncate_once:
                    reg.behaviour.truncate_once.discard(digest)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if reg.behaviour.slow_blobs:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for i in range(0, len(data), 65536):
                        try:
                            self.wfile.write(data[i : i + 65536])
                        except OSError:
                            return
                        time.sleep(reg.behaviour.slow_blobs)
                    return
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
