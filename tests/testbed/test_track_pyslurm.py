"""The pyslurm backend (experimental), where it can run: pyslurm importable AND built for
the running Slurm.  PyPI carries pyslurm only for Slurm 25.11, so on the testbed's Slurm
22.05 and 26.05 the tracking test is skipped with that reason (the one platform skip CI
allows), and asking for the backend must be one clear line; the command-line backend is
what runs here."""

from __future__ import annotations

import importlib.util

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job

pytestmark = pytest.mark.testbed


def _pyslurm_usable(tb: Testbed) -> str:
    """Empty when usable, else the reason to skip."""
    if importlib.util.find_spec("pyslurm") is None:
        return (
            "pyslurm is not installed (PyPI has it only for Slurm 25.11; "
            f"this testbed runs {tb.release})"
        )
    import pyslurm

    from hpcbridge.scheduler.slurm_pyslurm import versions_match

    have = str(getattr(pyslurm, "__version__", ""))
    running = tb.run(["sinfo", "--version"]).stdout.strip()
    if not versions_match(have, running):
        return f"pyslurm {have} does not match the running {running}"
    return ""


def test_pyslurm_backend_tracks_an_array(cluster: Testbed) -> None:
    testbed = cluster
    reason = _pyslurm_usable(testbed)
    if reason:
        pytest.skip(reason)
    b = Bridge(testbed, "pyslurm")
    b.env["HPCBRIDGE_SCHEDULER_BACKEND"] = "pyslurm"
    job = busybox_job(b, "py", "echo {task}; [ {task} != 2 ]", array="0-4")
    sub = b.submit(job)["id"]
    assert b.run("watch", sub, "--interval", "1").returncode == 1
    st = b.status(sub)
    assert st["counts"] == {"COMPLETED": 4, "FAILED": 1}


def test_pyslurm_backend_refuses_a_mismatch(cluster: Testbed) -> None:
    """Asking for pyslurm where it cannot run is one clear error, not a crash."""
    testbed = cluster
    if _pyslurm_usable(testbed) != "":
        b = Bridge(testbed, "pyslurm-refused")
        b.env["HPCBRIDGE_SCHEDULER_BACKEND"] = "pyslurm"
        done = b.run("status")
        assert done.returncode == 7, done.stdout + done.stderr
        assert "pyslurm" in done.stderr and "scheduler.backend = cli" in done.stderr
        assert "experimental" in done.stderr and len(done.stderr.splitlines()) == 1
        assert "Traceback" not in done.stderr
    else:
        pytest.skip("pyslurm is usable here; nothing to refuse")
