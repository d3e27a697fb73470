"""Golden sbatch scripts: every case in tests/golden/cases renders exactly as stored.

When a change to the script is intended, refresh the goldens with
``HPCBRIDGE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render_golden.py``
and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.support import case_names, golden_path, render_case, update_requested

REFRESH = "HPCBRIDGE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render_golden.py"


def compare_golden(name: str, text: str) -> None:
    path = golden_path(name)
    if update_requested():
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden {path.name}; create it with: {REFRESH}"
    want = path.read_text(encoding="utf-8").splitlines()
    got = text.splitlines()
    for n, (w, g) in enumerate(zip(want, got), start=1):
        assert g == w, (
            f"{path.name} line {n} differs:\n  golden: {w!r}\n  now:    {g!r}\n"
            f"if the change is intended, refresh with: {REFRESH}"
        )
    assert len(got) == len(want), (
        f"{path.name}: {len(got)} lines now, {len(want)} in the golden; "
        f"if intended, refresh with: {REFRESH}"
    )


@pytest.mark.parametrize("name", case_names())
def test_golden_script(name: str, tmp_path: Path) -> None:
    rendered = render_case(name, tmp_path)
    compare_golden(name, rendered.script)


def test_golden_pyxis_entry(tmp_path: Path) -> None:
    from tests.golden.support import render_pyxis_case

    compare_golden("pyxis-entry", render_pyxis_case(tmp_path).script)
