"""The zstd probe (doctor/zstd.py, doctor/readable.py, images/sif/elf.py) without a real runtime."""

from __future__ import annotations

import json
import platform
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hpcbridge import runner
from hpcbridge.config import load_config
from hpcbridge.doctor.findings import Status
from hpcbridge.doctor.readable import PlaceProbe, ZstdFacts, check_zstd
from hpcbridge.doctor.zstd import compute_argv, gather_zstd, parse_compute, probe_sifs
from hpcbridge.images.sif import elf
from hpcbridge.images.sif import format as sif

needs_mksquashfs = pytest.mark.skipif(
    runner.which("mksquashfs") is None, reason="squashfs-tools not installed"
)
SIFS = {"gzip": Path("/c/probe/g.sif"), "zstd": Path("/c/probe/z.sif")}


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_probe_program_prints_its_marker(tmp_path: Path, machine: str) -> None:
    program = elf.executable(machine)
    assert program is not None and program[:4] == b"\x7fELF" and len(program) < 256
    exe = tmp_path / "probe"
    exe.write_bytes(program)
    exe.chmod(0o755)
    if platform.machine() == machine:
        argv = [str(exe)]
    elif machine == "aarch64" and shutil.which("qemu-aarch64"):
        argv = ["qemu-aarch64", str(exe)]
    else:
        pytest.skip(f"cannot run {machine} code here")
    done = subprocess.run(argv, capture_output=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, elf.MARKER)


def test_unknown_machines_have_no_program() -> None:
    assert elf.executable("s390x") is None and not elf.supported("s390x")
    assert elf.supported("amd64") and elf.supported("arm64")


def test_compute_argv_runs_both_probes_in_one_step(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "HPCBRIDGE_RUNTIME_MODULES": "apptainer/1.4,squashfuse"}
    cfg = load_config(environ=env, cwd=str(tmp_path))
    argv = compute_argv(cfg, SIFS)
    assert argv[:5] == ["srun", "--nodes=1", "--ntasks=1", "--time=5", "--job-name=hpcbridge-probe"]
    i = argv.index("/bin/sh")
    assert argv[i + 1] == "-c" and argv[i + 3 :] == [
        "hpcbridge-probe",
        "apptainer",
        "2",
        "apptainer/1.4",
        "squashfuse",
        str(SIFS["gzip"]),
        str(SIFS["zstd"]),
    ]


def test_parse_compute() -> None:
    yes = (
        "host=n1\nprobe=/c/probe/g.sif rc=0\n| hpcbridge-probe-ok\n"
        "probe=/c/probe/z.sif rc=0\n| hpcbridge-probe-ok\n"
    )
    assert parse_compute(yes, SIFS) == PlaceProbe("compute", "n1", True, True, "")
    no = (
        "host=n2\nprobe=/c/probe/g.sif rc=0\n| hpcbridge-probe-ok\n"
        "probe=/c/probe/z.sif rc=255\n| FATAL: squashfuse: zstd is not supported\n"
    )
    assert parse_compute(no, SIFS) == PlaceProbe(
        "compute", "n2", True, False, "FATAL: squashfuse: zstd is not supported"
    )
    nothing = "host=n1\nprobe=/c/probe/g.sif rc=127\n| apptainer: not found\n"
    got = parse_compute(nothing + "probe=/c/probe/z.sif rc=127\n| apptainer: not found\n", SIFS)
    assert (got.gzip, got.zstd) == (False, None)
    assert parse_compute("srun: error: Unable to allocate resources", SIFS).gzip is None


def test_findings() -> None:
    login = PlaceProbe("login", "l1", True, True)
    compute = PlaceProbe("compute", "n1", True, False, "zstd unsupported")
    found = check_zstd(ZstdFacts("apptainer", (login, compute), False, "/s/r.json", True))
    assert [f.status for f in found] == [Status.OK] * 3
    assert "cannot read zstd-compressed SIFs on compute node n1" in found[1].message
    assert found[2].message.startswith("conversions use gzip by default")
    only_login = check_zstd(ZstdFacts("apptainer", (login,), None, "/s/r.json", False))
    assert "run hpcbridge doctor --compute" in only_login[-1].message
    both = check_zstd(
        ZstdFacts("apptainer", (login, PlaceProbe("compute", "n1", True, True)), True)
    )
    assert both[-1].message.startswith("conversions use zstd by default")
    broken = check_zstd(
        ZstdFacts("apptainer", (PlaceProbe("login", "l1", False, None, "no fuse"),), None)
    )
    assert broken[0].status == Status.WARN and "even a gzip SIF" in broken[0].message
    forced = check_zstd(ZstdFacts("apptainer", (login,), None, setting="gzip"))
    assert "convert.compression = gzip is set" in forced[-1].message


def _compressor_id(path: Path) -> int:
    with open(path, "rb") as f:
        desc = sif.read_sif(f).primary_partition()
        f.seek(desc.offset + 20)
        return int(struct.unpack("<H", f.read(2))[0])


@needs_mksquashfs
def test_probe_sifs_differ_only_in_the_compressor(tmp_path: Path) -> None:
    sifs = probe_sifs(tmp_path, "x86_64")
    assert [_compressor_id(sifs[c]) for c in ("gzip", "zstd")] == [1, 6]
    again = probe_sifs(tmp_path, "x86_64")  # made once
    assert again == sifs and sorted(p.name for p in (tmp_path / "probe").iterdir()) == sorted(
        p.name for p in sifs.values()
    )


FAKE_RUNTIME = """#!/bin/sh
# a runtime that runs gzip SIFs and refuses zstd ones (by the squashfs compressor id)
[ "$1" = exec ] || exit 2
off=$(od -An -tu8 -j $((4096 + 585 * 3 + 17)) -N8 "$2" | tr -d ' ')
id=$(od -An -tu2 -j $((off + 20)) -N2 "$2" | tr -d ' ')
if [ "$id" = 6 ]; then echo "FATAL: zstd is not supported here" >&2; exit 255; fi
echo hpcbridge-probe-ok
"""


@needs_mksquashfs
def test_gather_records_what_the_login_node_says(tmp_path: Path) -> None:
    fake = tmp_path / "fake-apptainer"
    fake.write_text(FAKE_RUNTIME)
    fake.chmod(0o755)
    env = {
        "HOME": str(tmp_path),
        "HPCBRIDGE_RUNTIME_EXECUTABLE": str(fake),
        "HPCBRIDGE_CACHE_DIR": str(tmp_path / "cache"),
        "HPCBRIDGE_STATE_DIR": str(tmp_path / "state"),
    }
    cfg = load_config(environ=env, cwd=str(tmp_path))
    facts = gather_zstd(cfg, str(fake), "fake 1.0", compute=False)
    assert facts.places == (
        PlaceProbe("login", facts.places[0].host, True, False, facts.places[0].detail),
    )
    assert "zstd is not supported" in facts.places[0].detail
    assert facts.verdict is False
    record = json.loads((tmp_path / "state" / "runtime-probes.json").read_text())
    (entry,) = record["runtimes"].values()
    assert entry["places"]["login"]["zstd"] is False and entry["places"]["login"]["gzip"] is True


def test_an_unsupported_machine_is_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpcbridge.doctor.zstd as probe

    monkeypatch.setattr(probe.platform, "machine", lambda: "s390x")
    cfg = load_config(environ={"HOME": str(tmp_path)}, cwd=str(tmp_path))
    facts = gather_zstd(cfg, "/usr/bin/apptainer", "apptainer 1.4.5", compute=True)
    assert facts.places == () and facts.verdict is None
    found = check_zstd(facts)
    assert [f.status for f in found] == [Status.OK, Status.OK]
    assert "no zstd probe program for s390x" in found[0].message
