"""2,500 tasks on a cluster with MaxArraySize=1001: split into chunks whose local
indices stay below the cap (1001-2000 would be refused), every task runs exactly
once and sees its global index."""

from __future__ import annotations

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, busybox_job

pytestmark = pytest.mark.testbed


def test_2500_tasks_in_chunks(testbed: Testbed) -> None:
    with testbed.reconfigure(max_array_size=1001):
        b = Bridge(testbed, "chunks")
        b.mkdir("out")
        job = busybox_job(
            b,
            "big",
            'echo "{task} $HPCBRIDGE_TASK $SLURM_ARRAY_TASK_ID" >> /out/{task}',
            array="0-2499",
            binds=("out:/out",),
        )
        sub = b.submit(job)
        chunks = [(c["offset"], c["indices"]) for c in sub["chunks"]]
        assert chunks == [(0, "0-1000"), (1001, "0-1000"), (2002, "0-497")]
        assert len(set(sub["job_ids"])) == 3

        watched = b.run("watch", sub["id"], "--interval", "2", timeout=1800)
        assert watched.returncode == 0, watched.stdout[-2000:] + watched.stderr
        st = b.status(sub["id"])
        assert st["counts"] == {"COMPLETED": 2500}

        out = b.dir / "out"
        files = sorted(int(p.name) for p in out.iterdir())
        assert files == list(range(2500))
        for t in range(2500):
            lines = (out / str(t)).read_text().splitlines()
            assert len(lines) == 1, (t, lines)  # exactly once
            task, exported, local = lines[0].split()
            assert int(task) == t and int(exported) == t  # the global index
            offset = 0 if t <= 1000 else (1001 if t <= 2001 else 2002)
            assert int(local) == t - offset
