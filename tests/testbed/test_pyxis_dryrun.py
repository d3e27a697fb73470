"""``hpcbridge sbatch --dry-run`` never downloads a layer: manifest and config at most,
then the cache's metadata when the registry is gone, else the image is marked unresolved.

The testbed's registry serves other sessions, so this test reaches it through a relay
of its own (127.0.0.1:<port> -> 127.0.0.1:5000) that logs every request, and stops
the relay to take the registry away.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from pathlib import Path

import pytest

from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

SCRIPT = """#!/bin/bash
#SBATCH -n 1
srun --container-image={image} python3 -c 'print(1)'
"""
_REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]")


class Relay:
    """A TCP relay to the registry that records the HTTP requests passing through."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5000)) -> None:
        self.target = target
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, log: bool) -> None:
        try:
            while data := src.recv(65536):
                if log:
                    self.requests += [
                        f"{m[0].decode()} {m[1].decode()}" for m in _REQUEST.findall(data)
                    ]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() (close alone does not)
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the relay still accepts connections"
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()


def test_dry_run_downloads_no_layer_and_works_without_the_registry(testbed: Testbed) -> None:
    base = testbed.user_dir("pyxis-dryrun")
    cache = base / "cache"  # never converted: this cache is new
    relay = Relay()
    try:
        mirror = f"127.0.0.1:{relay.port}/hpcb"
        env = {
            "HPCBRIDGE_STATE_DIR": str(base / "state"),
            "HPCBRIDGE_CACHE_DIR": str(cache),
            "HPCBRIDGE_CONVERT_REWRITE": (
                f'["nvcr.io/nvidia/pytorch:24.01-py3={mirror}/debian-python:bookworm", '
                f'"nvcr.io/nvidia/never:1={mirror}/whiteout:1"]'
            ),
        }
        known = _script(testbed, base, "known.sh", "nvcr.io#nvidia/pytorch:24.01-py3")
        first = testbed.hpcbridge("sbatch", "--dry-run", known, cwd=base, env=env)
        assert first.returncode == 0, first.stderr
        image = testbed.state["images"]["debian-python"]
        digest = image["digest"]
        assert f"#   digest {digest}, SIF \n" in first.stdout, first.stdout[:2000]
        assert "not converted yet" in first.stdout
        blobs = {r.rsplit("/", 1)[1] for r in relay.requests if "/blobs/" in r}
        assert relay.requests and not blobs & set(image["layers"]), relay.requests
        assert len(blobs) <= 1  # the image config, a few kilobytes
    finally:
        relay.stop()
    assert downloaded(cache) == []
    seen = len(relay.requests)
    again = testbed.hpcbridge("sbatch", "--dry-run", known, cwd=base, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"#   digest {digest}, SIF \n" in again.stdout  # from the cache's metadata
    never = _script(testbed, base, "never.sh", "nvcr.io#nvidia/never:1")
    offline = testbed.hpcbridge("sbatch", "--dry-run", never, cwd=base, env=env, timeout=120)
    assert offline.returncode == 0, offline.stderr
    assert re.search(
        r"^#   UNRESOLVED: .*127\.0\.0\.1:\d+.*; hpcbridge sbatch converts it before submitting$",
        offline.stdout,
        re.M,
    )
    assert offline.stdout.startswith("#!/bin/bash\n#SBATCH -n 1\n")
    testbed.run_as_user(["bash", "-n", "-c", offline.stdout])
    assert len(relay.requests) == seen and downloaded(cache) == []
    assert not list((base / "state").glob("submissions/*")), "a dry run records nothing"


def _script(tb: Testbed, base: Path, name: str, image: str) -> Path:
    path = base / name
    path.write_text(SCRIPT.format(image=image))
    os.chown(path, tb.user.uid, tb.user.gid)
    return path


def downloaded(cache: Path) -> list[Path]:
    """SIFs and layer blobs in the cache (a preview keeps only small JSON files)."""
    return [
        p for p in cache.rglob("*") if p.is_file() and (p.suffix == ".sif" or "blobs" in p.parts)
    ]
