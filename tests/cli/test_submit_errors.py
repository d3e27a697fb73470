"""submit/track commands on bad input: one clear line, a non-zero status, nothing recorded.

These run the real CLI in a subprocess with a private state directory and no
Slurm at all: every case must fail before anything would reach the scheduler.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        HPCBRIDGE_STATE_DIR=str(tmp_path / "state"),
        HPCBRIDGE_CACHE_DIR=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PATH="/nonexistent",  # no Slurm client may be needed for any of these
    )
    env.pop("HPCBRIDGE_SITE_CONFIG", None)
    env.pop("SLURM_CONF", None)
    return subprocess.run(
        [sys.executable, "-m", "hpcbridge", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def no_submissions(tmp_path: Path) -> bool:
    d = tmp_path / "state" / "submissions"
    return not d.exists() or not any(d.iterdir())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('name = "x"\nimage = "docker://busybox"\nnope = 1\n', "nope"),
        ('name = "x"\nimage = "docker://busybox"\narray = "5-1"\ncommand = ["true"]\n', "array"),
        ('name = "x"\ncommand = ["true"]\n', "image"),
        ('name = "x\\ny"\nimage = "docker://busybox"\ncommand = ["true"]\n', "name"),
    ],
)
def test_bad_job_files(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "job.toml").write_text(text)
    line = one_line_error(run(tmp_path, "submit", "job.toml"))
    assert line.startswith("hpcbridge: error:") and needle in line
    assert no_submissions(tmp_path)


def test_missing_job_file(tmp_path: Path) -> None:
    done = run(tmp_path, "submit", "missing.toml")
    assert done.returncode != 0 and "missing.toml" in done.stderr
    assert no_submissions(tmp_path)


def test_unknown_submission(tmp_path: Path) -> None:
    for cmd in (["status", "nope"], ["watch", "nope"], ["cancel", "nope"], ["logs", "nope"]):
        line = one_line_error(run(tmp_path, *cmd))
        assert "no submission 'nope'" in line and "hpcbridge list" in line


def test_resubmit_needs_failed_flag(tmp_path: Path) -> None:
    done = run(tmp_path, "resubmit", "x")
    assert done.returncode == 2 and "--failed" in done.stderr


def test_empty_list_and_status(tmp_path: Path) -> None:
    assert run(tmp_path, "list").stdout == ""
    done = run(tmp_path, "status")
    assert done.returncode == 0 and "no submissions yet" in done.stdout
    assert run(tmp_path, "list", "--json").stdout.strip().startswith('{\n  "submissions": []')
