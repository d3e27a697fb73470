"""A corpus of pyxis-style batch scripts (tests/testbed/pyxis_corpus) run by ``hpcbridge
sbatch`` on the testbed: each is submitted as the test user, runs for real (Slurm 22.05,
Apptainer 1.4.5 rootless), and its output is checked against its ``# expect:`` lines.

The scripts name NGC-style images; :data:`REWRITE` maps them to the testbed registry
(``convert.rewrite``, given as ``HPCBRIDGE_CONVERT_REWRITE``), as a site maps NGC to
its mirror.  All scripts are submitted first, then waited for together.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

CORPUS = Path(__file__).resolve().parent / "pyxis_corpus"
REGISTRY = "127.0.0.1:5000/hpcb"
REWRITE = {
    "nvcr.io/nvidia/pytorch:24.01-py3": f"{REGISTRY}/debian-python:bookworm",
    "nvcr.io/nvidia/pytorch:23.10-py3": f"{REGISTRY}/debian-python:bookworm",
    "nvcr.io/nvidia/nemo:24.07": f"{REGISTRY}/debian-python:bookworm",
    "nvcr.io/nvidia/hpc-benchmarks:24.03": f"{REGISTRY}/mpi:bookworm",
    "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04": f"{REGISTRY}/busybox:1.35",
    "ghcr.io/coreweave/nccl-tests:12.4.1": f"{REGISTRY}/mpi:bookworm",
    "ghcr.io/nvidia/jax:jax": f"{REGISTRY}/debian-python:bookworm",
    "vllm/vllm-openai:v0.6.3": f"{REGISTRY}/debian-python:bookworm",
    "ubuntu:24.04": f"{REGISTRY}/busybox:1.35",
}
#: /etc/rc of the enroot image the tests build (enroot's docker::configure layout)
ENROOT_RC = """# org.opencontainers.image.title pytorch (enroot layout, made by the hpcbridge tests)

mkdir -p "/workspace" 2> /dev/null
cd "/workspace" && unset OLDPWD || exit 1

if [ -s /etc/rc.local ]; then
    . /etc/rc.local
fi

if [ $# -gt 0 ]; then
    exec '/usr/local/bin/hello-entry' "$@"
else
    exec '/usr/local/bin/hello-entry' '--default-cmd'
fi
"""
ENROOT_ENV = "PATH=/usr/local/bin:/usr/bin:/bin\nMYVAR=made by enroot import\nLANG=C.UTF-8\n"


def environment(tb: Testbed, state: Path) -> dict[str, str]:
    cache = tb.user.home / ".cache" / "hpcbridge-pyxis-tests"
    if not cache.is_dir():
        tb.run_as_user(["mkdir", "-p", str(cache)])
    rules = ", ".join(f'"{k}={v}"' for k, v in REWRITE.items())
    return {
        "HPCBRIDGE_STATE_DIR": str(state),
        "HPCBRIDGE_CACHE_DIR": str(cache),
        "HPCBRIDGE_CONVERT_INSECURE_REGISTRIES": "127.0.0.1:5000",
        "HPCBRIDGE_CONVERT_REWRITE": f"[{rules}]",
    }


def chown(tb: Testbed, path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chown(p, tb.user.uid, tb.user.gid, follow_symlinks=False)


def make_wheel(path: Path) -> None:
    """A pure-Python wheel, hpcb_demo 1.0 (installed by unpacking it into site-packages)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = "hpcb_demo-1.0.dist-info"
    files = {
        "hpcb_demo/__init__.py": '__version__ = "1.0"\nMESSAGE = "hello from a wheel"\n',
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: hpcb-demo\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hpcbridge-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)


def sif_partition(path: Path) -> int:
    from hpcbridge.images.sif import format as sif

    with open(path, "rb") as fh:
        info = sif.read_sif(fh)
    return next(d.offset for d in info.descriptors if d.datatype == sif.DATA_PARTITION)


def make_enroot_image(tb: Testbed, env: dict[str, str], out: Path) -> Path:
    """An enroot-format squashfs: the debian-python root filesystem, /etc/rc and
    /etc/environment as enroot writes them, squashed as enroot does (lzo, -noD, -all-root)."""
    done = tb.hpcbridge(
        "convert", "-q", f"docker://{REGISTRY}/debian-python:bookworm", env=env, timeout=1800
    )
    assert done.returncode == 0, done.stderr
    sif_path = Path(done.stdout.strip().splitlines()[-1])
    root = out.parent / "enroot-rootfs"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-o", str(sif_partition(sif_path)), "-d", str(root), str(sif_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    for name in (
        ".singularity.d",
        ".exec",
        ".run",
        ".shell",
        ".test",
        "singularity",
        "environment",
    ):
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    (root / "workspace").mkdir(exist_ok=True)
    (root / "etc/rc").write_text(ENROOT_RC)
    (root / "etc/environment").write_text(ENROOT_ENV)
    entry = root / "usr/local/bin/hello-entry"
    entry.write_text('#!/bin/sh\necho "enroot entrypoint: $*"\n')
    entry.chmod(0o755)
    argv = ["mksquashfs", str(root), str(out), "-noappend", "-all-root", "-quiet", "-no-progress"]
    subprocess.run([*argv, "-comp", "lzo", "-noD"], check=True, capture_output=True)
    shutil.rmtree(root)
    out.chmod(0o644)
    return out


@dataclass
class Case:
    name: str
    meta: dict[str, list[str]]
    dir: Path
    job_id: Optional[str] = None
    submit_error: str = ""
    state: str = ""
    output: str = ""


def read_meta(text: str) -> dict[str, list[str]]:
    meta: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"# ([a-z-]+): (.*)$", line)
        if m:
            meta.setdefault(m.group(1), []).append(m.group(2))
    return meta


def submit(tb: Testbed, case: Case, env: dict[str, str], text: str) -> None:
    args = [w for line in case.meta.get("args", []) for w in shlex.split(line)]
    mode = case.meta.get("mode", ["file"])[0]
    if mode == "wrap":
        argv, stdin = [*args, "--wrap", case.meta["wrap"][0]], None
    elif mode == "stdin":
        argv, stdin = args, text
    else:
        script = case.dir / case.name
        script.write_text(text)
        chown(tb, script)
        script_args = [w for line in case.meta.get("script-args", []) for w in shlex.split(line)]
        argv, stdin = [*args, case.name, *script_args], None
    done = tb.hpcbridge("sbatch", *argv, cwd=case.dir, env=env, input=stdin, timeout=1800)
    m = re.search(r"^Submitted batch job (\d+)$", done.stdout, re.M)
    if done.returncode != 0 or not m:
        case.submit_error = f"exit {done.returncode}: {done.stdout}{done.stderr}"
    else:
        case.job_id = m.group(1)


@pytest.fixture(scope="module")
def corpus(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every corpus script submitted, then all waited for."""
    base = testbed.user_dir("pyxis-corpus")
    env = environment(testbed, base / "state")
    shared = base / "shared"
    shared.mkdir()
    sqsh = make_enroot_image(testbed, env, shared / "pytorch.sqsh")
    make_wheel(shared / "wheels" / "hpcb_demo-1.0-py3-none-any.whl")
    cases: dict[str, Case] = {}
    for path in sorted(CORPUS.glob("*.sh")):
        text = path.read_text()
        case = Case(path.name, read_meta(text), base / path.stem)
        case.dir.mkdir()
        needs = " ".join(case.meta.get("needs", [])).split()
        if "data" in needs:
            (case.dir / "data").mkdir()
            (case.dir / "data/hello.txt").write_text("hello\n")
            (case.dir / "data/train.txt").write_text("a b\nc\n\n")
        if "wheel" in needs:
            shutil.copytree(shared / "wheels", case.dir / "wheels")
        chown(testbed, case.dir)
        if "sqsh" in needs:
            os.link(sqsh, case.dir / "pytorch.sqsh")  # one file: converted once, by content
        submit(testbed, case, env, text)
        cases[path.name] = case
    jobs = [c.job_id for c in cases.values() if c.job_id]
    testbed.wait_for_jobs(jobs, timeout=1800)
    states = recorded_states(testbed, env)
    for case in cases.values():
        if case.job_id:
            case.state = states.get(case.job_id, "?")
            log = case.dir / f"slurm-{case.job_id}.out"
            case.output = log.read_text(errors="replace") if log.exists() else "(no output file)"
    return cases


def recorded_states(tb: Testbed, env: dict[str, str]) -> dict[str, str]:
    """job id -> final state, as ``hpcbridge status`` tells it (Slurm may have forgotten
    a finished job already: the record's outcome files still know)."""
    listed = tb.hpcbridge("list", "--json", "-n", "1000", env=env)
    assert listed.returncode == 0, listed.stderr
    out: dict[str, str] = {}
    for sub in json.loads(listed.stdout)["submissions"]:
        done = tb.hpcbridge("status", "--json", sub["id"], env=env)
        counts = json.loads(done.stdout)["submissions"][0]["counts"]
        out[sub["job_ids"][0]] = next(iter(counts)) if len(counts) == 1 else str(counts)
    return out


def test_the_corpus_is_large_enough() -> None:
    scripts = sorted(CORPUS.glob("*.sh"))
    assert len(scripts) >= 20
    for path in scripts:
        meta = read_meta(path.read_text())
        assert meta.get("pattern") and meta.get("expect"), path.name


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.sh")))
def test_corpus_script(corpus: dict[str, Case], testbed: Testbed, name: str) -> None:
    case = corpus[name]
    assert not case.submit_error, case.submit_error
    want = case.meta.get("state", ["COMPLETED"])[0]
    assert case.state == want, f"{name}: job {case.job_id} {case.state}\n{case.output}"
    for pattern in case.meta.get("expect", []):
        assert re.search(pattern, case.output, re.M), f"{name}: no /{pattern}/ in:\n{case.output}"
    for pattern in case.meta.get("absent", []):
        assert not re.search(pattern, case.output, re.M), f"{name}: /{pattern}/ in:\n{case.output}"
    leftover = Path(f"/tmp/hpcb-containers-{testbed.user.uid}/job-{case.job_id}")
    assert not leftover.exists(), f"{name}: named containers left in {leftover}"
