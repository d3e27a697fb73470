"""``hpcbridge doctor`` on this machine: output shape, JSON schema, exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "USER": "nobody-in-particular",
        "NO_COLOR": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "hpcbridge", "doctor", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=tmp_path,
        timeout=120,
    )


def test_json_schema_and_exit_status(tmp_path: Path) -> None:
    res = doctor(tmp_path, "--json", HPCBRIDGE_RUNTIME_EXECUTABLE="no-such-runtime")
    doc = json.loads(res.stdout)
    assert set(doc) == {"status", "findings"}
    for f in doc["findings"]:
        assert set(f) == {"check", "status", "message", "fix"}
        assert f["status"] in {"ok", "warn", "fail"}
        assert (f["fix"] != "") == (f["status"] != "ok")
    runtime = [f for f in doc["findings"] if f["check"] == "runtime"]
    # a login node without the runtime: a warning pointing at a compute node
    assert runtime[0]["status"] == "warn" and "no-such-runtime" in runtime[0]["message"]
    assert "srun -N1 -n1 -t 5 hpcbridge doctor" in runtime[0]["fix"]
    assert not any(f["check"] in ("userns", "fuse") for f in doc["findings"])
    assert res.returncode == {"ok": 0, "warn": 1, "fail": 2}[doc["status"]]
    # The cache dirs the config names were tried for real (created in the temp HOME).
    cache = next(f for f in doc["findings"] if f["check"] == "cache-dir")
    assert str(tmp_path / "home" / ".cache" / "hpcbridge") in cache["message"]


def test_text_output_one_line_per_finding_plus_fix(tmp_path: Path) -> None:
    res = doctor(tmp_path, HPCBRIDGE_RUNTIME_EXECUTABLE="no-such-runtime")
    lines = res.stdout.splitlines()
    assert lines[0].startswith("warn  runtime")
    assert lines[1].strip().startswith("fix: check a compute node: srun")
    assert lines[-1].startswith("doctor: ") and "failure(s)" in lines[-1]
    assert "\x1b[" not in res.stdout  # NO_COLOR


def test_bad_job_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "job.toml").write_text(
        'name = "x"\nimage = "a.sif"\ncommand = ["true"]\nbogus = 1\n'
    )
    res = doctor(tmp_path, "job.toml")
    assert res.returncode == 3
    assert res.stderr.count("\n") == 1 and "bogus" in res.stderr
    assert res.stdout == ""


def _runtime(res: subprocess.CompletedProcess[str]) -> dict[str, str]:
    doc = json.loads(res.stdout)
    found: dict[str, str] = next(f for f in doc["findings"] if f["check"] == "runtime")
    return found


def test_no_runtime_inside_a_job_fails_with_exit_2(tmp_path: Path) -> None:
    res = doctor(
        tmp_path, "--json", HPCBRIDGE_RUNTIME_EXECUTABLE="no-such-runtime", SLURM_JOB_ID="77"
    )
    found = _runtime(res)
    assert found["status"] == "fail" and "inside job 77" in found["message"]
    assert res.returncode == 2


def test_a_broken_runtime_fails_with_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "apptainer"  # on PATH, but cannot even print its version
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n")
    broken.chmod(0o755)
    res = doctor(tmp_path, "--json", HPCBRIDGE_RUNTIME_EXECUTABLE=str(broken))
    found = _runtime(res)
    assert found["status"] == "fail"
    assert "is installed but broken" in found["message"]
    assert "error while loading shared libraries" in found["message"]
    assert res.returncode == 2
