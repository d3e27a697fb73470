"""`make demo`'s story (convert, doctor, submit, watch, status) on the real testbed."""

from __future__ import annotations

import pytest

from tests.testbed.api import Testbed
from tests.testbed.demo import INPUTS, story

pytestmark = pytest.mark.testbed


def test_demo_story_writes_every_output(
    testbed: Testbed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert story(testbed) is True
    out = capsys.readouterr().out
    for step in ("convert", "doctor", "submit", "watch", "status"):
        assert f"$ hpcbridge {step}" in out
    assert f"{len(INPUTS)} task(s): {len(INPUTS)} completed" in out
    for name in INPUTS:
        assert f"input {name}: " in out
    assert "(missing)" not in out
