"""Fixtures for tests that run on a chosen Slurm release, or on both.

tests/testbed/conftest.py imports them for tests/testbed; elsewhere (tests/facts) a
module asks for a cluster with ``cluster_for(request.config, "26.05")``.

- ``cluster``: session fixture parametrized over ``releases_under_test()`` (ids
  ``slurm-22.05`` / ``slurm-26.05``): both releases, or only $HPCBRIDGE_TESTBED_SLURM
  when that is set.  The release the top-level ``testbed`` fixture serves is that same
  Testbed object.
- ``testbed_2205``, ``testbed_2605``: one release, whatever the environment says.
- ``cluster_dir``: like ``user_dir`` but made through ``cluster`` (same user and home),
  so asking for it brings up no other cluster.

A cluster this session started is brought down at the end of the run, unless
$HPCBRIDGE_TESTBED_KEEP is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pytest

from tests.testbed.knobs import RELEASES, release_from

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

_UP: dict[str, Testbed] = {}


def releases_under_test(environ: Optional[Mapping[str, str]] = None) -> tuple[str, ...]:
    """Both releases, or the one $HPCBRIDGE_TESTBED_SLURM names."""
    env = os.environ if environ is None else environ
    if env.get("HPCBRIDGE_TESTBED_SLURM"):
        return (release_from({}, env),)
    return RELEASES


def cluster_for(config: pytest.Config, release: str) -> Testbed:
    """The running ``release`` cluster (brought up once per process; down at the end of
    the run if this process started it and $HPCBRIDGE_TESTBED_KEEP is unset)."""
    tb = _UP.get(release)
    if tb is not None:
        return tb
    from tests.testbed import lifecycle
    from tests.testbed.api import Testbed

    if os.geteuid() != 0:
        pytest.fail("the testbed needs root (it starts Slurm daemons and creates the test user)")
    state = lifecycle.up({"slurm": release}, quiet=True)
    tb = _UP[release] = Testbed(state)
    if state.get("started") and not os.environ.get("HPCBRIDGE_TESTBED_KEEP"):
        root = Path(state["state_dir"])

        def bring_down() -> None:
            lifecycle.down(quiet=True, state_dir=root)

        config.add_cleanup(bring_down)
    return tb


def _session_cluster(request: pytest.FixtureRequest, release: str) -> Testbed:
    if release == release_from({}, os.environ) and release not in _UP:
        # the release the top-level `testbed` fixture serves: share its object
        tb: Testbed = request.getfixturevalue("testbed")
        _UP[release] = tb
    return cluster_for(request.config, release)


@pytest.fixture(scope="session", params=releases_under_test(), ids=lambda r: f"slurm-{r}")
def cluster(request: pytest.FixtureRequest) -> Testbed:
    """The testbed cluster of one Slurm release (the test runs once per release)."""
    return _session_cluster(request, str(request.param))


@pytest.fixture(scope="session")
def testbed_2205(request: pytest.FixtureRequest) -> Testbed:
    return _session_cluster(request, "22.05")


@pytest.fixture(scope="session")
def testbed_2605(request: pytest.FixtureRequest) -> Testbed:
    return _session_cluster(request, "26.05")


@pytest.fixture
def cluster_dir(cluster: Testbed, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh directory owned by the test user; removed if the test passed."""
    path = cluster.user_dir(request.node.name)
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        shutil.rmtree(path, ignore_errors=True)
