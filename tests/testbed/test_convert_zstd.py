"""zstd SIFs on the testbed (issue 15): made by hpcbridge, run by the real Apptainer 1.4.5
as the test user in a Slurm job; the probe says yes there, and no against a runtime whose
squashfuse refuses zstd superblocks (as a squashfuse built without zstd would); once both
the login node and a compute node said yes, ``convert.compression = "auto"`` makes zstd.

Every test keeps its own state dir (``HPCBRIDGE_STATE_DIR``): the probe record of one
test, or of a person trying the doctor, never changes another test's conversions.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from hpcbridge.images.sif import format as sif
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

#: A squashfuse_ll that refuses zstd-compressed squashfs images and passes the rest to
#: the real one (bound over /usr/bin/squashfuse_ll inside the Apptainer wrapper's bwrap).
#: Apptainer 1.4.5 calls it as ``squashfuse_ll -f -o ...,offset=N /proc/self/fd/3 MNT``.
REFUSING_SQUASHFUSE = """#!/bin/sh
# hpcbridge test: a squashfuse without zstd support (refuses compression id 6)
PATH=/usr/bin:/bin  # Apptainer runs it with an empty PATH
off=0; prev=""; img=""; last=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then
    off=$(printf '%s\\n' "$a" | tr ',' '\\n' | sed -n 's/^offset=//p')
  fi
  img=$last; last=$a; prev=$a
done
comp=$(od -An -tu2 -j $(( ${off:-0} + 20 )) -N2 "$img" | tr -d ' ')
if [ "$comp" = 6 ]; then
  echo "squashfuse: this squashfuse was built without zstd support" >&2
  exit 1
fi
exec REAL "$@"
"""


def _env(state: Path, **extra: str) -> dict[str, str]:
    return {"HPCBRIDGE_STATE_DIR": str(state), **extra}


def _compressor(path: Path) -> int:
    with open(path, "rb") as f:
        part = sif.read_sif(f).primary_partition()
        f.seek(part.offset + 20)
        return int(struct.unpack("<H", f.read(2))[0])


def _doctor(tb: Testbed, cwd: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    done = tb.hpcbridge("doctor", "--compute", "--json", cwd=cwd, env=env, timeout=900)
    assert done.returncode in (0, 1), done.stderr  # ok, or warnings
    return [f for f in json.loads(done.stdout)["findings"] if f["check"] == "zstd"]


def refusing_runtime(tb: Testbed, where: Path) -> Path:
    """The testbed's apptainer wrapper with the refusing squashfuse bound in."""
    wrapper = tb.apptainer.read_text()
    rootfs = re.search(r"^ROOTFS=(\S+)$", wrapper, re.M)
    assert rootfs is not None, wrapper
    fuse = where / "squashfuse_ll"
    fuse.write_text(REFUSING_SQUASHFUSE.replace("REAL", f"{rootfs.group(1)}/usr/bin/squashfuse_ll"))
    bind = f'--ro-bind {fuse} /usr/bin/squashfuse_ll \\\n  --chdir "$PWD" "$@"'
    text = wrapper.replace('--chdir "$PWD" "$@"', bind)
    assert text != wrapper
    inside = re.search(r'^\[ ! -e (\S+) \] \|\| exec /usr/bin/apptainer "\$@"$', text, re.M)
    if inside:  # 26.05: in a job (the cluster's rootfs) the wrapper runs Apptainer directly
        text = text.replace(
            inside.group(0),
            f"[ ! -e {inside.group(1)} ] || exec bwrap --dev-bind / / "
            f'--ro-bind {fuse} /usr/bin/squashfuse_ll /usr/bin/apptainer "$@"',
        )
    exe = where / "apptainer"
    exe.write_text(text)
    for p in (fuse, exe):
        p.chmod(0o755)
    return exe


def test_a_zstd_sif_made_by_hpcbridge_runs_in_a_slurm_job(testbed: Testbed, user_dir: Path) -> None:
    cache = user_dir / "cache"
    ref = "docker://" + testbed.image("debian-python").ref
    done = testbed.hpcbridge(
        "convert",
        ref,
        "--cache-dir",
        cache,
        "--compression",
        "zstd",
        "--json",
        env=_env(user_dir / "state"),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    path = Path(json.loads(done.stdout)["path"])
    assert _compressor(path) == 6  # zstd
    record = json.loads(path.with_suffix(".json").read_text())
    assert (record["compression"], record["level"]) == ("zstd", 9)
    job = testbed.sbatch(
        "-o",
        "out.txt",
        "--wrap",
        f"apptainer exec {path} python3 -c 'import sys; print(\"zstd ok\", sys.version_info[0])'",
        cwd=user_dir,
    )
    assert testbed.wait_for_jobs([job], timeout=300) == {job: "COMPLETED"}
    assert "zstd ok 3" in (user_dir / "out.txt").read_text()


def test_the_probe_says_yes_here_and_auto_converts_to_zstd(
    testbed: Testbed, user_dir: Path
) -> None:
    env = _env(user_dir / "state", HPCBRIDGE_CACHE_DIR=str(user_dir / "cache"))
    ref = "docker://" + testbed.image("busybox").ref
    first = testbed.hpcbridge("convert", ref, "--json", cwd=user_dir, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    first_record = Path(json.loads(first.stdout)["path"]).with_suffix(".json")
    assert json.loads(first_record.read_text())["compression"] == "gzip"  # nothing proven yet
    found = _doctor(testbed, user_dir, env)
    messages = [f["message"] for f in found]
    assert any("reads zstd-compressed SIFs on this login node" in m for m in messages), messages
    assert any(re.search(r"reads zstd-compressed SIFs on compute node n\d", m) for m in messages)
    assert any(m.startswith("conversions use zstd by default") for m in messages), messages
    record = json.loads((user_dir / "state" / "runtime-probes.json").read_text())
    (entry,) = record["runtimes"].values()
    assert entry["version"].startswith("apptainer version 1.4.5")
    assert {p: (v["gzip"], v["zstd"]) for p, v in entry["places"].items()} == {
        "login": (True, True),
        "compute": (True, True),
    }
    again = testbed.hpcbridge(
        "convert", ref, "--force", "--json", cwd=user_dir, env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr
    path = Path(json.loads(again.stdout)["path"])
    assert json.loads(path.with_suffix(".json").read_text())["compression"] == "zstd"
    assert _compressor(path) == 6
    forced = testbed.hpcbridge(
        "convert",
        ref,
        "--force",
        "--json",
        cwd=user_dir,
        timeout=600,
        env={**env, "HPCBRIDGE_CONVERT_COMPRESSION": "gzip"},
    )  # the site (or user) can force gzip
    assert forced.returncode == 0, forced.stderr
    assert _compressor(Path(json.loads(forced.stdout)["path"])) == 1


def test_the_probe_says_no_against_a_runtime_that_refuses_zstd(
    testbed: Testbed, user_dir: Path
) -> None:
    exe = refusing_runtime(testbed, user_dir)
    env = _env(
        user_dir / "state",
        HPCBRIDGE_CACHE_DIR=str(user_dir / "cache"),
        HPCBRIDGE_RUNTIME_EXECUTABLE=str(exe),
    )
    found = _doctor(testbed, user_dir, env)
    messages = [f["message"] for f in found]
    assert any("cannot read zstd-compressed SIFs on this login node" in m for m in messages)
    assert any(
        re.search(r"cannot read zstd-compressed SIFs on compute node n\d", m) for m in messages
    )
    assert any("built without zstd support" in m for m in messages), messages
    assert any(m.startswith("conversions use gzip by default") for m in messages), messages
    record = json.loads((user_dir / "state" / "runtime-probes.json").read_text())
    (entry,) = record["runtimes"].values()
    assert entry["path"] == str(exe)
    assert {p: (v["gzip"], v["zstd"]) for p, v in entry["places"].items()} == {
        "login": (True, False),
        "compute": (True, False),
    }
    ref = "docker://" + testbed.image("busybox").ref
    done = testbed.hpcbridge("convert", ref, "--json", cwd=user_dir, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _compressor(Path(json.loads(done.stdout)["path"])) == 1  # auto: gzip
