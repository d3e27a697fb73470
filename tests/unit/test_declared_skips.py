"""The declared skips of tests/conftest.py name tests that exist (a renamed test would
otherwise run, fail, and look like a regression of the platform, or the table would rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PLATFORM_SKIPS, RELEASE_SKIPS

REPO = Path(__file__).resolve().parents[2]


def _collected() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/testbed", "tests/facts"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_declared_skips_name_collected_tests() -> None:
    ids = _collected()
    bare = {i.split("[", 1)[0] for i in ids}
    assert set(PLATFORM_SKIPS) <= bare
    for release, table in RELEASE_SKIPS.items():
        missing = sorted(set(table) - ids)
        assert not missing, (release, missing)
    assert set(RELEASE_SKIPS) <= {"22.05", "26.05"}
