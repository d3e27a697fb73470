"""``hpcbridge convert`` on the testbed: the local docker-registry, the real Apptainer 1.4.5,
everything run as the non-root test user.

Issue 3's must-show from the fetch side: native SIFs of busybox and debian-python
from the registry run like ``docker run`` under Apptainer and look like
apptainer-built ones (made here by ``hpcbridge convert --backend apptainer``, which
runs ``apptainer build``); the whiteout image's file list equals apptainer's;
every source form gives the same SIF bytes; two fresh caches give the same
bytes; 20 concurrent converts of one cold digest convert once; ``kill -9`` at
several points leaves nothing partial and no lock that blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_build import names, partition, siftool_types, squash_list
from tests.testbed.users import REPO, as_user_argv

pytestmark = pytest.mark.testbed

HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")


class Converter:
    """Converts as the test user into per-purpose caches under its home."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        self.root = tb.user_dir("convert")
        self.done: dict[tuple[str, str], dict[str, Any]] = {}

    def cache(self, name: str) -> Path:
        return self.root / name

    def convert(self, ref: str, cache: str = "native", *args: str) -> dict[str, Any]:
        key = (ref, cache + " ".join(args))
        if key not in self.done:
            out = self.tb.hpcbridge(
                "convert", ref, "--cache-dir", self.cache(cache), "--json", *args, timeout=900
            )
            assert out.returncode == 0, out.stderr
            self.done[key] = json.loads(out.stdout)
        return self.done[key]

    def native(self, name: str) -> Path:
        return Path(self.convert("docker://" + self.tb.image(name).ref)["path"])

    def by_apptainer(self, name: str) -> Path:
        res = self.convert(
            "docker://" + self.tb.image(name).ref, "apptainer", "--backend", "apptainer"
        )
        return Path(res["path"])


@pytest.fixture(scope="module")
def conv(testbed: Testbed) -> Converter:
    return Converter(testbed)


def apptainer(tb: Testbed, *args: str) -> str:
    return tb.run_as_user([str(tb.apptainer), *args], timeout=300).stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------- runs like docker run


RUNS = {
    # image: (output of run without args, args, output of run with those args)
    "busybox": ("entrypoint args: default cmd", ["a", "b c"], "entrypoint args: a b c"),
    "debian-python": ("hello from debian-python", ["-c", "print(6 * 7)"], "42"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_native_sif_runs_like_docker_and_like_apptainers(
    testbed: Testbed, conv: Converter, name: str
) -> None:
    native, ref_sif = conv.native(name), conv.by_apptainer(name)
    assert native.name == ref_sif.name == testbed.image(name).digest[7:] + ".sif"
    no_args, args, with_args = RUNS[name]
    for sif in (native, ref_sif):
        # run: ENTRYPOINT + CMD without arguments, ENTRYPOINT + arguments with them
        assert no_args in apptainer(testbed, "run", str(sif))
        assert with_args in apptainer(testbed, "run", str(sif), *args)
    assert apptainer(testbed, "run", str(native)) == apptainer(testbed, "run", str(ref_sif))
    # exec sees the image Env (also under --cleanenv)
    state = json.loads(Path(testbed.state_dir / "testbed.json").read_text())
    env = state["images"][name]["config"]["Env"]
    for flags in ([], ["--cleanenv"]):
        seen = apptainer(testbed, "exec", *flags, str(native), "env").splitlines()
        for entry in env:
            assert entry in seen, (entry, flags)
    # inspect shows the image labels, like on the apptainer-built SIF
    labels = state["images"][name]["labels"]
    for sif in (native, ref_sif):
        got = json.loads(apptainer(testbed, "inspect", "--json", str(sif)))
        shown = got["data"]["attributes"]["labels"]
        assert {k: shown.get(k) for k in labels} == labels
    # siftool: same descriptor types in the same order
    assert siftool_types(testbed, native) == siftool_types(testbed, ref_sif)
    assert siftool_types(testbed, native) == [
        "Def.FILE",
        "JSON.Generic",
        "JSON.Generic",
        "FS (Squashfs/*System/amd64)",
    ]


def test_whiteout_file_list_equals_apptainer_build(testbed: Testbed, conv: Converter) -> None:
    native = names(squash_list(testbed, conv.native("whiteout")))
    built = names(squash_list(testbed, conv.by_apptainer("whiteout")))
    assert native == built
    assert "etc/issue" not in native and "usr/bin/pydoc3" not in native  # deleted by whiteouts
    skel = [n for n in native if n.startswith("etc/skel/")]
    assert skel == ["etc/skel/hpcb-opaque.txt"]  # opaque directory: only the upper layer's file
    assert not [n for n in native if ".wh." in n]


def test_apptainer_backend_publishes_into_the_same_cache(testbed: Testbed, conv: Converter) -> None:
    path = conv.by_apptainer("busybox")
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["backend"] == "apptainer" and record["digest"] == testbed.image("busybox").digest
    assert record["sif_sha256"] == sha256(path)
    again = conv.tb.hpcbridge(
        "convert",
        "docker://" + testbed.image("busybox").ref,
        "--cache-dir",
        conv.cache("apptainer"),
    )
    assert again.returncode == 0 and again.stdout.strip() == str(path)  # cached, any backend


@pytest.mark.parametrize("backend", ["native", "apptainer"])
def test_compressor_and_level_reach_mksquashfs(
    testbed: Testbed, conv: Converter, backend: str
) -> None:
    """lzo's level reaches both backends; xz takes none and the SIF still runs."""
    ref = "docker://" + testbed.image("busybox").ref
    for comp, level in (("lzo", "3"), ("xz", None)):
        extra = ["--level", level] if level else []
        res = conv.convert(
            ref, f"{backend}-{comp}", "--backend", backend, "--compression", comp, *extra
        )
        path = Path(res["path"])
        off, _ = partition(path)
        info = testbed.run(["unsquashfs", "-s", "-o", str(off), str(path)], timeout=120).stdout
        assert f"Compression {comp}" in info
        if level:
            assert f"compression level {level}" in info
        record = json.loads(path.with_suffix(".json").read_text())
        assert (record["compression"], record["level"]) == (comp, int(level) if level else None)
        assert "ok" in apptainer(testbed, "exec", str(path), "echo", "ok")
    refused = testbed.hpcbridge(
        "convert", ref, "--cache-dir", conv.cache("refused"), "--compression", "xz", "--level", "9"
    )
    assert refused.returncode == 3 and "xz takes no compression level" in refused.stderr


# ------------------------------------------------------------- identity of the bytes


@pytest.mark.parametrize("name", ["busybox", "debian-python"])
def test_every_source_form_gives_the_same_sif(testbed: Testbed, conv: Converter, name: str) -> None:
    img = testbed.image(name)
    forms = {
        "docker": f"docker://{img.ref}",
        "docker-archive": f"docker-archive:{img.docker_archive}",
        "oci": f"oci:{img.oci_dir}",
        "oci-archive": f"oci-archive:{img.oci_archive}",
    }
    results = {k: conv.convert(ref, f"forms-{name}-{k}") for k, ref in forms.items()}
    shas = {k: r["sif_sha256"] for k, r in results.items()}
    assert len(set(shas.values())) == 1, shas
    for k, r in results.items():
        assert sha256(Path(r["path"])) == r["sif_sha256"]
        if k != "docker-archive":  # a docker-archive stores no manifest (docs/convert.md)
            assert r["digest"] == img.digest


def test_same_digest_on_two_fresh_caches(testbed: Testbed, conv: Converter) -> None:
    ref = "docker://" + testbed.image("busybox").ref
    a = conv.convert(ref, "fresh-a")
    b = conv.convert(ref, "fresh-b")
    assert not a["cached"] and not b["cached"]
    assert a["sif_sha256"] == b["sif_sha256"] == sha256(Path(a["path"])) == sha256(Path(b["path"]))


# ------------------------------------------------------------- concurrency and kills


def leftovers(cache: Path) -> list[str]:
    bad = [p for p in cache.rglob("*") if p.name.endswith((".part", ".lock", ".break"))]
    if (cache / "tmp").is_dir():
        bad += list((cache / "tmp").iterdir())
    return sorted(str(p.relative_to(cache)) for p in bad)


def spawn_convert(tb: Testbed, ref: str, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        as_user_argv(tb.user, [HPCBRIDGE, "convert", ref, "--cache-dir", str(cache), "--json"]),
        env=dict(tb.env),
        cwd=tb.user.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_20_concurrent_converts_of_one_cold_digest(testbed: Testbed, conv: Converter) -> None:
    cache = conv.cache("concurrent")
    ref = "docker://" + testbed.image("debian-python").ref
    procs = [spawn_convert(testbed, ref, cache) for _ in range(20)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0] * 20, [e[-500:] for _, e in outs]
    results = [json.loads(o) for o, _ in outs]
    assert len({r["path"] for r in results}) == 1
    assert len({r["sif_sha256"] for r in results}) == 1
    assert sum(1 for r in results if not r["cached"]) == 1  # one conversion, 19 waited
    assert leftovers(cache) == []
    assert len(list((cache / "sif").glob("*.sif"))) == 1


def _wait_for(pred: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 600) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.002)
    return False


def _any(d: Path, pattern: str) -> bool:
    try:
        return any(d.glob(pattern))
    except OSError:
        return False


def _part_bigger(d: Path, size: int) -> bool:
    try:
        return any(p.stat().st_size > size for p in d.glob(".*.part"))
    except OSError:
        return False


POINTS: dict[str, Callable[[Path], bool]] = {
    "locked": lambda c: _any(c / "locks", "*.lock"),
    "downloading": lambda c: _any(c / "blobs" / "sha256", ".*.partial"),
    "squashing": lambda c: _any(c / "sif", ".*.part"),
    "half-written": lambda c: _part_bigger(c / "sif", 8 << 20),
}


def test_kill_9_at_several_points_then_convert_again(testbed: Testbed, conv: Converter) -> None:
    ref = "docker://" + testbed.image("debian-python").ref
    reached = []
    for point, pred in POINTS.items():
        cache = conv.cache(f"kill-{point}")
        proc = spawn_convert(testbed, ref, cache)
        try:
            if _wait_for(lambda p=pred, c=cache: p(c), proc):  # type: ignore[misc]
                reached.append(point)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole tree, as a batch system does
            proc.communicate()
        assert not list((cache / "sif").glob("*.sif")) or point not in reached
        again = testbed.hpcbridge("convert", ref, "--cache-dir", cache, "--json", timeout=900)
        assert again.returncode == 0, again.stderr
        res = json.loads(again.stdout)
        assert sha256(Path(res["path"])) == res["sif_sha256"]
        assert leftovers(cache) == [], point
    assert set(reached) >= {"locked", "squashing", "half-written"}, reached
