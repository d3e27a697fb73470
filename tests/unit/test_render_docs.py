"""docs/jobs.md shows a real job file next to its real rendered script."""

from __future__ import annotations

import re
from pathlib import Path

from tests.golden.support import CASES, golden_path

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def _block(kind: str, name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(
        rf"<!-- {kind}: {re.escape(name)} -->\n```\w+\n(.*?)```\n<!-- end -->", text, re.S
    )
    assert m, f"docs/jobs.md has no {kind} block for {name}"
    return m.group(1)


def test_docs_show_the_golden_job_file() -> None:
    assert _block("golden-job", "array-inputs") == (CASES / "array-inputs.toml").read_text()


def test_docs_show_the_golden_script() -> None:
    assert _block("golden-script", "array-inputs") == golden_path("array-inputs").read_text()
