"""A download killed halfway resumes (issue 15): the convert process is killed by its PID
while a 512 MiB layer blob streams in from the testbed registry; the next convert asks
for the rest with an HTTP Range request from what was committed to disk, and the SIF is
byte-identical to one converted without interruption (from the image's OCI layout: every
source form gives the same bytes)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench import bigimage
from tests.testbed.api import Testbed
from tests.testbed.users import REPO, as_user_argv

pytestmark = pytest.mark.testbed

HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")
MEDIUM = bigimage.Params(
    random_layers=1, random_files=1, random_file_mib=512, small_files=2000, small_layers=1
)
MiB = 1 << 20


def _partials(cache: Path) -> list[Path]:
    try:
        return list((cache / "blobs" / "sha256").glob(".*.partial"))
    except OSError:
        return []


def _biggest(cache: Path) -> int:
    sizes = []
    for p in _partials(cache):
        with contextlib.suppress(OSError):
            sizes.append(p.stat().st_size)
    return max(sizes, default=0)


def test_a_killed_download_resumes_and_the_sif_is_byte_identical(
    testbed: Testbed, user_dir: Path
) -> None:
    layout, digest, ref = bigimage.ensure(MEDIUM)
    env = {"HPCBRIDGE_STATE_DIR": str(user_dir / "state")}
    reference = testbed.hpcbridge(
        "convert",
        f"oci:{layout}:{MEDIUM.tag}",
        "--cache-dir",
        user_dir / "ref",
        "--compression",
        "zstd",
        "--json",
        env=env,
        timeout=900,
    )
    assert reference.returncode == 0, reference.stderr
    want = json.loads(reference.stdout)["sif_sha256"]

    cache = user_dir / "cache"
    argv = [
        HPCBRIDGE,
        "convert",
        f"docker://{ref}",
        "--cache-dir",
        str(cache),
        "--compression",
        "zstd",
    ]
    proc = subprocess.Popen(
        as_user_argv(testbed.user, argv),
        env={**testbed.env, **env},
        cwd=testbed.user.home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline and _biggest(cache) < 200 * MiB:
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the convert process itself, by its PID
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the download ended before it could be killed"
    (partial,) = [p for p in _partials(cache) if p.stat().st_size >= 200 * MiB]
    meta = json.loads(partial.with_name(partial.name + ".json").read_text())
    assert meta["committed"] >= 128 * MiB and meta["size"] > meta["committed"]
    assert not list((cache / "sif").glob("*.sif"))

    again = testbed.hpcbridge(
        "-v",
        "convert",
        f"docker://{ref}",
        "--cache-dir",
        cache,
        "--compression",
        "zstd",
        "--json",
        env=env,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    m = re.search(rf"resuming blob {meta['digest']} at byte (\d+) of {meta['size']}", again.stderr)
    assert m is not None, again.stderr[-3000:]
    assert int(m.group(1)) == meta["committed"]
    got = json.loads(again.stdout)
    assert got["digest"] == digest and got["sif_sha256"] == want
    assert not _partials(cache)  # the finished blob replaced its partial file
