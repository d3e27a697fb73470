"""Per-user submit limit (sacctmgr MaxSubmitJobs, read when accounting is on):
chunks beyond it are deferred and ``watch`` submits them as earlier tasks finish,
so every task still runs exactly once with its global index."""

from __future__ import annotations

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job

pytestmark = pytest.mark.testbed


def test_chunks_wait_for_the_per_user_limit(cluster: Testbed) -> None:
    testbed = cluster
    with testbed.reconfigure(accounting=True, mem_limit=False):
        user = testbed.user.name
        testbed.run(["sacctmgr", "-i", "modify", "user", user, "set", "MaxSubmitJobs=5"])
        try:
            b = Bridge(testbed, "limits")
            b.mkdir("out")
            job = busybox_job(
                b,
                "limited",
                "sleep 2; echo {task} >> /out/{task}",
                array="0-11",
                binds=("out:/out",),
            )
            sub = b.submit(job)
            assert [len(c["indices"]) > 0 for c in sub["chunks"]] == [True] * 3
            assert [(c["offset"], c["indices"]) for c in sub["chunks"]] == [
                (0, "0-4"),
                (5, "0-4"),
                (10, "0-1"),
            ]
            assert sub["deferred"] is True and len(sub["job_ids"]) == 1
            watched = b.run("watch", sub["id"], "--interval", "1", timeout=600)
            assert watched.returncode == 0, watched.stdout + watched.stderr
            rec = b.records()[0]
            assert rec["state"] == "submitted" and not rec["deferred"]
            assert len({c["job_id"] for c in rec["chunks"]}) == 3
            out = b.dir / "out"
            for t in range(12):
                assert (out / str(t)).read_text().split() == [str(t)]
        finally:
            testbed.run(["sacctmgr", "-i", "modify", "user", user, "set", "MaxSubmitJobs=-1"])
