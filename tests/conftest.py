"""Shared pytest fixtures, and the no-silent-skip rule of CI.

Kept light: nothing testbed-related is imported until a test asks for the
``testbed`` fixture, so unit and CLI tests do not pay for it.

In CI (``CI=true``) a skipped test fails the run: a skip there means a tool, a
package or the console script is missing (``make deps``, ``pip install -e '.[test]'``),
and a green run that tested less than it says is worse than a red one.  The only
skips allowed are the platform skips of :data:`PLATFORM_SKIPS`.
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

# Tests that cannot run on this platform whatever is installed (node id -> why).  Keep it
# tiny: a missing tool is not a platform limit, it is a broken set-up.
PLATFORM_SKIPS: dict[str, str] = {
    "tests/testbed/test_track_pyslurm.py::test_pyslurm_backend_tracks_an_array": (
        "pyslurm has no release for the testbed's Slurm 22.05 or 26.05 (PyPI carries 25.11 only)"
    ),
}

_CI_SKIPS: list[tuple[str, str]] = []  # (node id, reason) of the skips that fail this run


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _note_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    if report.nodeid.split("[", 1)[0] in PLATFORM_SKIPS:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    _CI_SKIPS.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)  # a module-level skip (importorskip, pytestmark skipif at import)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _CI_SKIPS:
        return
    terminalreporter.section("skipped in CI (CI=true): these fail the run", red=True)
    for nodeid, reason in _CI_SKIPS:
        terminalreporter.line(f"{nodeid}: {reason}")
    terminalreporter.line(
        "install what is missing (make deps; pip install -e '.[test]'), or, if the test "
        "cannot run on this platform at all, declare it in PLATFORM_SKIPS (tests/conftest.py)"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CI_SKIPS and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
