"""The pyslurm backend is experimental, and every place a user meets it says so in one line:
``config check`` (a note, the file is still valid), ``doctor`` (a warning), and any
command that needs the scheduler without pyslurm installed (exit 7, one line, no
traceback).  hpcbridge ships no ``[pyslurm]`` extra."""

from __future__ import annotations

import sys
from pathlib import Path

from hpcbridge import runner
from hpcbridge._toml import loads
from hpcbridge.config import load_config
from hpcbridge.doctor.findings import Status
from hpcbridge.doctor.job import check_backend
from hpcbridge.scheduler.slurm_pyslurm import EXPERIMENTAL, backend_note

REPO = Path(__file__).resolve().parents[2]


def hpcbridge(tmp: Path, *args: str, site: Path) -> runner.Completed:
    env = {
        "HOME": str(tmp),
        "USER": "alice",
        "PATH": "/usr/bin:/bin",
        "HPCBRIDGE_SITE_CONFIG": str(site),
        "HPCBRIDGE_STATE_DIR": str(tmp / "state"),
    }
    return runner.run(
        [sys.executable, "-m", "hpcbridge", *args], env=env, cwd=tmp, check=False, timeout=60
    )


def test_config_check_notes_the_experimental_backend(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[scheduler]\nbackend = "pyslurm"\n')
    done = hpcbridge(tmp_path, "config", "check", str(site), site=Path("/dev/null"))
    assert done.returncode == 0 and done.stdout == f"{site}: ok\n"
    assert done.stderr == f"hpcbridge: note: {EXPERIMENTAL}\n"
    cli = tmp_path / "cli.toml"
    cli.write_text('[scheduler]\nbackend = "cli"\n')
    done = hpcbridge(tmp_path, "config", "check", str(cli), site=Path("/dev/null"))
    assert done.returncode == 0 and done.stderr == ""


def test_without_pyslurm_a_command_is_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[scheduler]\nbackend = "pyslurm"\n')
    done = hpcbridge(tmp_path, "status", site=site)
    assert done.returncode == 7, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert "pyslurm (experimental), but pyslurm is not installed" in line
    assert "scheduler.backend = cli" in line and "Traceback" not in done.stderr


def test_doctor_warns_and_no_extra_is_offered(tmp_path: Path) -> None:
    cfg = load_config({"scheduler.backend": "pyslurm"}, cwd=tmp_path, environ={})
    (finding,) = check_backend(cfg)
    assert finding.status is Status.WARN and finding.message == EXPERIMENTAL
    assert check_backend(load_config({}, cwd=tmp_path, environ={})) == []
    assert backend_note("cli") is None
    project = loads((REPO / "pyproject.toml").read_text())["project"]
    assert "pyslurm" not in project.get("optional-dependencies", {})
