"""`hpcbridge config show|check` through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SITE_CONFIGS = Path(__file__).resolve().parents[2] / "site-configs"


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "HOME": str(tmp_path / "home"),
        "USER": "alice",
        "PATH": "/usr/bin:/bin",
        "HPCBRIDGE_SITE_CONFIG": "/dev/null",
    }
    return subprocess.run(
        [sys.executable, "-m", "hpcbridge", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**base, **env},
        timeout=60,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        "[polling]\nmin_interval = 20\n[partitions.debug]\ndefault = true\nmax_time = '1:00:00'\n"
    )
    (tmp_path / "home").mkdir()
    return path


def test_show_lists_every_key(tmp_path: Path, site: Path) -> None:
    out = run(["config", "show"], tmp_path, HPCBRIDGE_SITE_CONFIG=str(site))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "polling.min_interval = 20.0" in lines
    assert 'partitions.debug.max_time = "01:00:00"' in lines
    assert f'cache.dir = "{tmp_path}/home/.cache/hpcbridge"' in lines
    assert "runtime.version = (unset)" in lines


def test_show_sources_names_file_variable_and_flag(tmp_path: Path, site: Path) -> None:
    (tmp_path / "hpcbridge.toml").write_text("[convert]\nlevel = 4\n")
    out = run(
        ["config", "show", "--sources", "--set", "scheduler.cluster=c1"],
        tmp_path,
        HPCBRIDGE_SITE_CONFIG=str(site),
        HPCBRIDGE_CACHE_DIR="/scratch/cache",
    )
    assert out.returncode == 0, out.stderr
    rows = {line.split(" = ")[0]: line.rsplit("# ", 1)[1] for line in out.stdout.splitlines()}
    assert rows["polling.min_interval"] == str(site)
    assert rows["convert.level"] == str(tmp_path / "hpcbridge.toml")
    assert rows["cache.dir"] == "HPCBRIDGE_CACHE_DIR"
    assert rows["scheduler.cluster"] == "--set scheduler.cluster"
    assert rows["runtime.flavor"] == "default"


def test_show_json_with_sources(tmp_path: Path, site: Path) -> None:
    out = run(["config", "show", "--json", "--sources"], tmp_path, HPCBRIDGE_SITE_CONFIG=str(site))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["config"]["polling"]["min_interval"] == 20.0
    assert doc["config"]["partitions"]["debug"]["default"] is True
    assert doc["sources"]["polling.min_interval"] == str(site)
    assert doc["files"] == [str(site)]
    plain = json.loads(run(["config", "show", "--json"], tmp_path).stdout)
    assert set(plain) >= {"runtime", "cache", "polling", "partitions"}


def test_show_warns_when_the_floor_wins(tmp_path: Path, site: Path) -> None:
    out = run(
        ["config", "show"],
        tmp_path,
        HPCBRIDGE_SITE_CONFIG=str(site),
        HPCBRIDGE_POLLING_MIN_INTERVAL="1",
    )
    assert out.returncode == 0
    assert "polling.min_interval = 20.0" in out.stdout.splitlines()
    assert (
        "warning: HPCBRIDGE_POLLING_MIN_INTERVAL: polling.min_interval = 1 is below the site minimum"
        in out.stderr
    )


def test_show_with_a_broken_user_file_is_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "home" / ".config" / "hpcbridge"
    conf.mkdir(parents=True)
    (conf / "config.toml").write_text("[polling]\nmin_intervl = 60\n")
    out = run(["config", "show"], tmp_path)
    assert out.returncode == 3
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"hpcbridge: error: {conf / 'config.toml'}: unknown key 'polling.min_intervl' "
        "(did you mean 'min_interval'? valid keys in [polling]: max_backoff, min_interval)"
    ]


def test_show_bad_set(tmp_path: Path) -> None:
    out = run(["config", "show", "--set", "polling"], tmp_path)
    assert (
        out.returncode == 3 and "is not KEY=VALUE" in out.stderr and "Traceback" not in out.stderr
    )


def test_check_ok(tmp_path: Path, site: Path) -> None:
    out = run(["config", "check", str(site)], tmp_path)
    assert (out.returncode, out.stdout) == (0, f"{site}: ok\n")


def test_check_every_shipped_example(tmp_path: Path) -> None:
    for path in sorted(SITE_CONFIGS.glob("*.toml")):
        out = run(["config", "check", str(path)], tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{path}: ok"


def test_check_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[polling]\nmin_intervall = 10\n[runtime]\nflavor = 'docker'\n[cach]\n")
    out = run(["config", "check", str(bad)], tmp_path)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"hpcbridge: error: {bad}: ") for line in lines)
    assert "Traceback" not in out.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    out = run(["config", "check", "nope.toml"], tmp_path)
    assert out.returncode == 3
    assert out.stderr.strip() == "hpcbridge: error: nope.toml: file does not exist (check the path)"
