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
    assert runtime[0]["status"] == "fail" and "no-such-runtime" in runtime[0]["message"]
    assert doc["status"] == "fail" and res.returncode == 2
    # The cache dirs the config names were tried for real (created in the temp HOME).
    cache = next(f for f in doc["findings"] if f["check"] == "cache-dir")
    assert str(tmp_path / "home" / ".cache" / "hpcbridge") in cache["message"]


def test_text_output_one_line_per_finding_plus_fix(tmp_path: Path) -> None:
    res = doctor(tmp_path, HPCBRIDGE_RUNTIME_EXECUTABLE="no-such-runtime")
    lines = res.stdout.splitlines()
    assert lines[0].startswith("fail  runtime")
    assert lines[1].strip().startswith("fix: ")
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
