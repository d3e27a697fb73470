"""Golden pairs: tests/golden/recipes/<case>/{Dockerfile|image.def} -> expected output + notes.

After an intended change, refresh them with
``HPCBRIDGE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_recipe_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbridge.recipe import def_to_dockerfile, dockerfile_to_def

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "recipes"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
UPDATE = os.environ.get("HPCBRIDGE_UPDATE_GOLDEN") == "1"


def _translate(case: Path) -> tuple[str, str, Path]:
    if (case / "Dockerfile").exists():
        result = dockerfile_to_def((case / "Dockerfile").read_text(), "Dockerfile")
        expected = case / "expected.def"
    else:
        result = def_to_dockerfile((case / "image.def").read_text(), "image.def")
        expected = case / "expected.Dockerfile"
    notes = "".join(f"{n}\n" for n in result.notes)
    return result.text, notes, expected


def test_there_are_cases_both_ways() -> None:
    assert any((GOLDEN / c / "Dockerfile").exists() for c in CASES)
    assert any((GOLDEN / c / "image.def").exists() for c in CASES)


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    case = GOLDEN / name
    text, notes, expected = _translate(case)
    if UPDATE:
        expected.write_text(text)
        (case / "notes.txt").write_text(notes)
    hint = "if the change is intended, rerun with HPCBRIDGE_UPDATE_GOLDEN=1 and review the diff"
    assert text == expected.read_text(), hint
    assert notes == (case / "notes.txt").read_text(), hint
