"""Fixtures of tests/testbed that pick a Slurm release (see fixtures.py).

``cluster`` runs a test on both releases (or on $HPCBRIDGE_TESTBED_SLURM only);
``testbed_2205`` / ``testbed_2605`` give one release; ``cluster_dir`` is ``user_dir``
made through ``cluster``.  ``testbed`` and ``user_dir`` stay in tests/conftest.py.
"""

from __future__ import annotations

from tests.testbed.fixtures import cluster, cluster_dir, testbed_2205, testbed_2605

__all__ = ["cluster", "cluster_dir", "testbed_2205", "testbed_2605"]
