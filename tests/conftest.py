"""Shared pytest fixtures.

Kept light: nothing testbed-related is imported until a test asks for the
``testbed`` fixture, so unit and CLI tests do not pay for it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.testbed.api import Testbed


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running local testbed (Slurm + Apptainer + registry), brought up if needed.

    Torn down at the end of the session only if this session started it and
    ``HPCBRIDGE_TESTBED_KEEP`` is unset.
    """
    from tests.testbed import lifecycle
    from tests.testbed.api import Testbed

    if os.geteuid() != 0:
        pytest.fail("the testbed needs root (it starts Slurm daemons and creates the test user)")
    state = lifecycle.up(quiet=True)
    tb = Testbed(state)
    try:
        yield tb
    finally:
        if state.get("started") and not os.environ.get("HPCBRIDGE_TESTBED_KEEP"):
            lifecycle.down(quiet=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the item (``user_dir`` keeps a failed test's files)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def user_dir(testbed: Testbed, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh directory owned by the test user, under its home, for one test.

    Removed after the test if it passed; kept (and named after the test) if it failed.
    """
    path = testbed.user_dir(request.node.name)
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        shutil.rmtree(path, ignore_errors=True)
