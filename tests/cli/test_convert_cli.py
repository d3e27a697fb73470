"""``hpcbridge convert`` and ``hpcbridge images`` as processes, against a real HTTP
registry on 127.0.0.1 (tests/unit/images_support.py) and real mksquashfs.

Covers: output forms, one-line errors, N concurrent processes converting one
cold digest (one conversion, identical paths), ``kill -9`` at several points
(then a new convert succeeds and nothing partial or locked remains), images
list/inspect/prune.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.images_support import Behaviour, Registry, make_image

pytestmark = pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="needs mksquashfs")

EXE = [sys.executable, "-m", "hpcbridge"]
IMG = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}, {"etc/motd": b"two\n"}])


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCBRIDGE_")}
    env.update(
        HOME=str(tmp / "home"),
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
        HPCBRIDGE_SITE_CONFIG="",
    )
    env.pop("HPCBRIDGE_SITE_CONFIG")
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def leftovers(cache: Path) -> list[str]:
    bad = [p for p in cache.rglob("*") if p.name.endswith((".part", ".lock", ".break"))]
    tmp = cache / "tmp"
    if tmp.is_dir():
        bad += list(tmp.iterdir())
    return [str(p.relative_to(cache)) for p in bad]


def test_convert_prints_path_json_and_copies_out(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"{reg.host}/tiny:v1"
        out = run(["convert", ref], env, tmp_path)
        assert out.returncode == 0, out.stderr
        path = Path(out.stdout.strip())
        assert path == tmp_path / "xdg-cache" / "hpcbridge" / "sif" / f"{IMG.digest[7:]}.sif"
        assert out.stderr == ""  # not a terminal: no progress display
        js = run(["convert", ref, "--json", "-o", str(tmp_path / "x.sif")], env, tmp_path)
        data = json.loads(js.stdout)
        assert data["digest"] == IMG.digest and data["cached"] is True
        assert data["path"] == str(path) and data["output"] == str(tmp_path / "x.sif")
        assert (tmp_path / "x.sif").read_bytes() == path.read_bytes()
        other = run(["convert", ref, "--cache-dir", str(tmp_path / "c2")], env, tmp_path)
        assert other.stdout.strip().startswith(str(tmp_path / "c2" / "sif"))


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["convert", "docker://Bad/Name"], 3, "invalid image reference 'docker://Bad/Name'"),
        (["convert", "./img.tar"], 3, "needs its format"),
        (["convert", "oci:/no/such/dir"], 4, "does not exist"),
        (["convert", "docker://127.0.0.1:9/x:1", "--offline"], 4, "is not in the cache"),
        (["convert", "busybox", "--platform", "amd64"], 3, "invalid platform 'amd64'"),
        (["images", "prune"], 3, "needs --older-than, --max-size, --blobs or --all"),
        (["images", "prune", "--older-than", "soon"], 4, "invalid age 'soon'"),
        (["images", "inspect", "sha256:abcdef0123"], 3, "no cached image matches"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], code: int, fragment: str) -> None:
    out = run(args, env_for(tmp_path), tmp_path)
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcbridge: error: ") and fragment in lines[0]
    assert "Traceback" not in out.stderr


def test_concurrent_converts_of_one_cold_digest(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    n = 8
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        ref = f"docker://{reg.host}/tiny:v1"
        procs = [
            subprocess.Popen(
                [*EXE, "convert", ref, "--json"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        codes = [p.returncode for p in procs]
        blob_gets = [p for m, p, _ in reg.log if m == "GET" and "/blobs/" in p]
    assert codes == [0] * n, [e for _, e in outs]
    results = [json.loads(o) for o, _ in outs]
    assert len({r["path"] for r in results}) == 1
    assert sum(1 for r in results if not r["cached"]) == 1  # exactly one conversion
    assert sorted(blob_gets) == sorted(f"/v2/tiny/blobs/{d}" for d in IMG.blobs())  # each once
    assert leftovers(tmp_path / "xdg-cache" / "hpcbridge") == []


def _wait_for(pred, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False


BIG = make_image(
    [{f"data/f{i}": random.Random(i).randbytes(1 << 20) for i in range(24)}, {"etc/motd": b"x\n"}]
)


@pytest.mark.parametrize("point", ["locked", "downloading", "squashing"])
def test_kill_9_then_convert_again(tmp_path: Path, point: str) -> None:
    env = env_for(tmp_path)
    cache = tmp_path / "cache"
    behaviour = Behaviour(slow_blobs=0.02 if point == "downloading" else 0.0)
    with Registry(behaviour) as reg:
        reg.push("big", "v1", BIG)
        ref = f"docker://{reg.host}/big:v1"
        proc = subprocess.Popen(
            [*EXE, "convert", ref, "--cache-dir", str(cache)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # kill -9 the whole tree (mksquashfs too), as a batch system does
        )
        try:
            seen = {
                "locked": lambda: (
                    any((cache / "locks").glob("*.lock")) if (cache / "locks").is_dir() else False
                ),
                "downloading": lambda: (
                    any((cache / "blobs" / "sha256").glob(".*.part*"))  # .part or .partial
                    if (cache / "blobs" / "sha256").is_dir()
                    else False
                ),
                "squashing": lambda: (
                    any((cache / "sif").glob(".*.part")) if (cache / "sif").is_dir() else False
                ),
            }[point]
            assert _wait_for(seen), f"never reached {point}"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert not list((cache / "sif").glob("*.sif")), "a partial SIF is visible"
        again = run(["convert", ref, "--cache-dir", str(cache)], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert Path(again.stdout.strip()).is_file()
    assert leftovers(cache) == []


def test_images_list_inspect_prune(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    other = make_image([{"etc/motd": b"other\n"}])
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        reg.push("other", "v2", other)
        for r in (f"{reg.host}/tiny:v1", f"{reg.host}/other:v2"):
            assert run(["convert", r], env, tmp_path).returncode == 0
        host = reg.host
    listing = run(["images", "list"], env, tmp_path)
    assert listing.returncode == 0
    assert IMG.digest[:19] in listing.stdout and f"docker://{host}/other:v2" in listing.stdout
    assert "2 images" in listing.stdout
    data = json.loads(run(["images", "list", "--json"], env, tmp_path).stdout)
    assert {d["digest"] for d in data} == {IMG.digest, other.digest}
    insp = json.loads(run(["images", "inspect", IMG.digest[:16]], env, tmp_path).stdout)
    assert insp["digest"] == IMG.digest and insp["backend"] == "native"
    by_ref = json.loads(
        run(["images", "inspect", f"docker://{host}/tiny:v1"], env, tmp_path).stdout
    )
    assert by_ref["digest"] == IMG.digest
    # make "tiny" old, then prune by age (dry run first)
    cache = tmp_path / "xdg-cache" / "hpcbridge"
    os.utime(cache / "sif" / f"{IMG.digest[7:]}.json", (time.time() - 40 * 86400,) * 2)
    dry = run(["images", "prune", "--older-than", "30d", "--dry-run"], env, tmp_path)
    assert f"would remove {IMG.digest[:19]}" in dry.stdout and other.digest[:19] not in dry.stdout
    assert (cache / "sif" / f"{IMG.digest[7:]}.sif").exists()
    done = json.loads(
        run(["images", "prune", "--older-than", "30d", "--json"], env, tmp_path).stdout
    )
    assert [r["digest"] for r in done["removed"] if r["kind"] == "sif"] == [IMG.digest]
    assert not (cache / "sif" / f"{IMG.digest[7:]}.sif").exists()
    assert (cache / "sif" / f"{other.digest[7:]}.sif").exists()
    size = run(["images", "prune", "--max-size", "0"], env, tmp_path)
    assert "removed" in size.stdout and not list((cache / "sif").glob("*.sif"))
    assert not list((cache / "blobs" / "sha256").iterdir())
