"""The probe record (images/readable.py), compression 'auto', the plain HEAD of the warm path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hpcbridge.errors import InputError
from hpcbridge.images import readable
from hpcbridge.images.fetch.head import parse_head, plain_head
from hpcbridge.images.sif import compression
from tests.unit.images_support import Behaviour, Registry, make_image

IMG = make_image([{"etc/motd": b"hi\n"}])


def _runtime(tmp_path: Path, text: str = "#!/bin/sh\necho apptainer version 1.4.5\n") -> Path:
    exe = tmp_path / "bin" / "apptainer"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(text)
    exe.chmod(0o755)
    return exe


def _save(state: Path, exe: Path, place: str, zstd: bool | None, gzip: bool = True) -> None:
    result = {"host": "h", "gzip": gzip, "zstd": zstd, "detail": ""}
    readable.save_place(state, readable.runtime_id(str(exe)), "apptainer 1.4.5", place, result)


def test_auto_is_zstd_only_once_login_and_compute_read_it(tmp_path: Path) -> None:
    exe, state = _runtime(tmp_path), tmp_path / "state"
    assert readable.choose("auto", str(exe), state) == "gzip"  # nothing probed
    _save(state, exe, "login", True)
    assert readable.choose("auto", str(exe), state) == "gzip"  # no compute node yet
    _save(state, exe, "compute", True)
    assert readable.choose("auto", str(exe), state) == "zstd"
    assert readable.choose("gzip", str(exe), state) == "gzip"  # a set compressor wins
    record = json.loads((state / "runtime-probes.json").read_text())
    (entry,) = record["runtimes"].values()
    assert entry["path"] == str(exe) and entry["version"] == "apptainer 1.4.5"
    assert set(entry["places"]) == {"login", "compute"} and record["schema"] == 1


def test_a_place_that_cannot_read_zstd_means_gzip(tmp_path: Path) -> None:
    exe, state = _runtime(tmp_path), tmp_path / "state"
    _save(state, exe, "login", True)
    _save(state, exe, "compute", False)
    assert readable.zstd_readable(str(exe), state) is False
    assert readable.choose("auto", str(exe), state) == "gzip"


def test_a_failed_control_says_nothing(tmp_path: Path) -> None:
    exe, state = _runtime(tmp_path), tmp_path / "state"
    _save(state, exe, "login", None, gzip=False)
    _save(state, exe, "compute", True)
    assert readable.zstd_readable(str(exe), state) is None


def test_replacing_the_runtime_forgets_its_record(tmp_path: Path) -> None:
    exe, state = _runtime(tmp_path), tmp_path / "state"
    _save(state, exe, "login", True)
    _save(state, exe, "compute", True)
    assert readable.choose("auto", str(exe), state) == "zstd"
    _runtime(tmp_path, "#!/bin/sh\necho apptainer version 1.5.0 # upgraded\n")
    assert readable.choose("auto", str(exe), state) == "gzip"


def test_compute_only_when_the_login_node_has_no_runtime(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rid = readable.runtime_id("no-such-runtime-here")
    assert rid.identity is None
    result = {"host": "n1", "gzip": True, "zstd": True, "detail": ""}
    readable.save_place(state, rid, "apptainer 1.4.5", "compute", result)
    assert readable.zstd_readable("no-such-runtime-here", state) is True


def test_no_state_dir_or_a_broken_record_means_gzip(tmp_path: Path) -> None:
    exe = _runtime(tmp_path)
    assert readable.choose("auto", str(exe), None) == "gzip"
    state = tmp_path / "state"
    state.mkdir()
    (state / "runtime-probes.json").write_text("{not json")
    assert readable.choose("auto", str(exe), state) == "gzip"


def test_auto_takes_levels_both_compressors_accept() -> None:
    compression.check("auto", 9)
    with pytest.raises(InputError, match="out of range for auto") as err:
        compression.check("auto", 12)
    assert "gzip" in (err.value.hint or "")
    with pytest.raises(ValueError, match="resolved"):
        compression.mksquashfs_args("auto", 9)


def test_plain_head_reads_the_digest() -> None:
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        assert plain_head(reg.host, "tiny", "v1") == (IMG.digest, IMG.media_type)
        assert plain_head(reg.host, "tiny", "nope") is None  # 404: the full client says why
        assert (
            reg.log[0][0] == "HEAD"
            and "application/vnd.oci.image.index.v1+json" in (reg.log[0][2]["Accept"])
        )


def test_plain_head_leaves_auth_to_the_full_client() -> None:
    with Registry(Behaviour(auth="bearer")) as reg:
        reg.push("tiny", "v1", IMG)
        assert plain_head(reg.host, "tiny", "v1") is None


def test_plain_head_of_a_closed_port_is_none() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert plain_head(f"127.0.0.1:{port}", "x", "y", timeout=2) is None


def test_parse_head() -> None:
    digest = "sha256:" + "a" * 64
    ok = f"HTTP/1.1 200 OK\r\nDocker-Content-Digest: {digest}\r\nContent-Type: x/y; a=b\r\n\r\n"
    assert parse_head(ok.encode(), "v1") == (digest, "x/y")
    assert parse_head(ok.encode(), "sha256:" + "b" * 64) is None
    assert parse_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n", "v1") is None
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n", "v1") is None
    assert parse_head(b"HTTP/1.1 200 OK\r\n", "v1") is None


def test_the_warm_path_imports_no_http_client(tmp_path: Path) -> None:
    """A cached tag on a plain-http registry: one HEAD on a socket, no http.client/ssl."""
    from hpcbridge.images.cache import Cache

    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        cache = Cache(tmp_path / "c")
        cache.ensure()
        cache.sif_path(IMG.digest).write_bytes(b"SIF")
        code = (
            "import sys; from pathlib import Path\n"
            "from hpcbridge.images.convert import convert\n"
            f"r = convert('{reg.host}/tiny:v1', cache_dir=Path({str(cache.root)!r}))\n"
            "assert r.cached and r.digest == sys.argv[1], r\n"
            "bad = [m for m in ('http.client', 'ssl', 'hpcbridge.images.publish',"
            " 'hpcbridge.images.fetch.registry', 'hpcbridge.images.lock') if m in sys.modules]\n"
            "assert not bad, bad\n"
        )
        env = {**os.environ, "https_proxy": "", "http_proxy": ""}
        done = subprocess.run(
            [sys.executable, "-c", code, IMG.digest], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
