"""A local OCI registry for the testbed: Debian's `docker-registry` (distribution 2.8).

Listens on 127.0.0.1:5000 over plain HTTP; storage lives in the testbed cache so pushed
images survive `down`/`up`. Note: registry 2.8 answers 404 to a request for an OCI
manifest unless the Accept header lists its media type.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_ADDR = "127.0.0.1:5000"
REGISTRY_BIN = "/usr/bin/docker-registry"

# Popen objects of registries started by this process (kept so they are not reaped as
# "still running" garbage; the caller stops them by PID).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def registry_config(storage: Path, addr: str = DEFAULT_ADDR) -> str:
    """The registry's config.yml (YAML is a superset of the JSON-ish text written here)."""
    return f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: hpcbridge-testbed-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
"""


def registry_ready(addr: str = DEFAULT_ADDR, timeout: float = 1.0) -> bool:
    """True when a registry answers the v2 API base endpoint at addr (200, or 401 from
    one that wants credentials)."""
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and "Docker-Distribution-Api-Version" in exc.headers
    except (urllib.error.URLError, OSError):
        return False


AUTH_REALM = "hpcbridge-testbed"


def htpasswd_line(user: str, password: str) -> str:
    """`user:<bcrypt hash>` (distribution's htpasswd auth takes bcrypt only)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Debian's Python 3.11; libxcrypt does bcrypt

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this Python's crypt() cannot make bcrypt hashes")
    return f"{user}:{hashed}\n"


def start_registry(
    state_dir: Path,
    cache_dir: Path,
    addr: str = DEFAULT_ADDR,
    *,
    auth: tuple[str, str] | None = None,
    name: str = "registry",
    extra_config: str = "",
) -> int:
    """Start docker-registry in the background (own session), wait until it answers,
    return its PID. The caller records the PID and stops it (`stop_registry`).

    Storage is `<cache_dir>/registry`. With `auth=(user, password)` the registry asks
    for HTTP basic credentials (htpasswd, realm "hpcbridge-testbed"); `extra_config` is
    appended to config.yml (e.g. registry_token.TokenServer.registry_auth_config());
    `name` names its config/log files in state_dir, so a second registry can serve the
    same storage."""
    state_dir = Path(state_dir)
    cache_dir = Path(cache_dir)
    if registry_ready(addr):
        raise RuntimeError(
            f"something already answers as a registry on {addr}; stop it first "
            "(python -m tests.testbed down) or free the port"
        )
    storage = cache_dir / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    text = registry_config(storage, addr)
    if auth is not None:
        htpasswd = state_dir / f"{name}.htpasswd"
        htpasswd.write_text(htpasswd_line(*auth))
        text += f"auth:\n  htpasswd:\n    realm: {AUTH_REALM}\n    path: {htpasswd}\n"
    config = state_dir / f"{name}.yml"
    config.write_text(text + extra_config)
    log = state_dir / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(state_dir)},
        )
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with status {proc.returncode}; see {log}")
        if registry_ready(addr, timeout=0.5):
            _CHILDREN[proc.pid] = proc
            return proc.pid
        time.sleep(0.05)
    proc.terminate()
    proc.wait()
    raise RuntimeError(f"docker-registry did not answer on {addr} within 15 s; see {log}")


def manifest_digest(ref_repo: str, tag: str, addr: str = DEFAULT_ADDR) -> str | None:
    """The Docker-Content-Digest the registry reports for repo:tag, or None if absent."""
    req = urllib.request.Request(
        f"http://{addr}/v2/{ref_repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            digest = resp.headers.get("Docker-Content-Digest")
            return str(digest) if digest else None
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    except (urllib.error.URLError, OSError):
        return None


def stop_registry(pid: int, timeout: float = 10.0) -> None:
    """TERM the registry `pid` (KILL after `timeout`) and reap it if this process started it."""
    import signal

    proc = _CHILDREN.pop(pid, None)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
