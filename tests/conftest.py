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

# Tests a Slurm release of the testbed cannot run, whatever is installed (release -> node
# id -> why).  When the session's testbed is that release (HPCBRIDGE_TESTBED_SLURM), they
# are skipped before they start, and their skips are allowed in CI.
_NO_PMIX = (
    "Open MPI needs srun --mpi=pmix, and Debian's Slurm 26.05 has no mpi/pmix plugin "
    "(srun --mpi=list: none, pmi2, cray_shasta)"
)
_NO_HOST_MPI = (
    "the 26.05 nodes run jobs in the cluster's Debian sid root filesystem, which has no "
    "Open MPI 4.1 / MPICH 4.0 of the host (host-built MPI programs, host mpirun)"
)
_MPI = "tests/facts/test_slurm_mpi.py::"
_HYBRID = "tests/testbed/test_render_jobs.py::test_mpi_hybrid_two_nodes_distinct_ranks"
_CORPUS = "tests/testbed/test_pyxis_corpus.py::test_corpus_script"
RELEASE_SKIPS: dict[str, dict[str, str]] = {
    "26.05": {
        f"{_MPI}test_srun_mpi_two_ranks_on_two_nodes[openmpi-pmix]": _NO_HOST_MPI,
        f"{_MPI}test_srun_mpi_two_ranks_on_two_nodes[mpich-pmi2]": _NO_HOST_MPI,
        f"{_MPI}test_mpirun_inside_an_allocation": _NO_HOST_MPI,
        f"{_MPI}test_mpich_with_pmix_runs_independent_singletons": _NO_HOST_MPI,
        f"{_MPI}test_openmpi_with_pmi2_fails_in_mpi_init": _NO_HOST_MPI,
        "tests/facts/test_apptainer_mpi.py::test_two_ranks_on_two_nodes"
        "[openmpi-pmix-/opt/hello-ompi-extra0]": _NO_PMIX,
        f"{_HYBRID}[openmpi-srun-/opt/hello-ompi]": _NO_PMIX,
        f"{_HYBRID}[openmpi-mpirun-/opt/hello-ompi]": _NO_HOST_MPI,
        f"{_CORPUS}[01-nccl-allreduce-array.sh]": _NO_PMIX,  # the script says --mpi=pmix
        f"{_CORPUS}[15-hpl-mpi.sh]": _NO_PMIX,
    },
}

_CI_SKIPS: list[tuple[str, str]] = []  # (node id, reason) of the skips that fail this run


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def session_release() -> str:
    """The Slurm release the ``testbed`` fixture serves in this session."""
    return os.environ.get("HPCBRIDGE_TESTBED_SLURM", "").strip() or "22.05"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    why = RELEASE_SKIPS.get(session_release(), {}).get(item.nodeid)
    if why:
        pytest.skip(f"on Slurm {session_release()}: {why}")


def _note_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    if report.nodeid.split("[", 1)[0] in PLATFORM_SKIPS:
        return
    if report.nodeid in RELEASE_SKIPS.get(session_release(), {}):
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
