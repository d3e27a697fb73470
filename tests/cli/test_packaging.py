"""The wheel carries what the code loads at run time: templates, defaults, site configs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("hpcbridge-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_ships_every_template(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for template in (ROOT / "templates").rglob("*.j2"):
        rel = template.relative_to(ROOT / "templates").as_posix()
        assert f"hpcbridge/templates/{rel}" in names


def test_wheel_ships_site_configs_and_defaults(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "hpcbridge/config/defaults.toml" in names
    for example in (ROOT / "site-configs").glob("*.toml"):
        assert f"hpcbridge/site-configs/{example.name}" in names


def test_wheel_entry_point(wheel: zipfile.ZipFile) -> None:
    (entry,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "hpcbridge = hpcbridge.cli:main" in wheel.read(entry).decode()
