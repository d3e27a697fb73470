"""GPU and MPI jobs through ``hpcbridge submit`` / ``watch`` / ``logs`` on both Slurm releases,
with the testbed's site configuration (site-configs/testbed.toml, polling floor 1 s).

* GPU: ``[gpu] count = 2`` becomes ``--gres=gpu:2``; inside the container
  CUDA_VISIBLE_DEVICES is ``0,1`` (fake gres devices on both clusters).
* MPI: MPICH with ``srun --mpi=pmi2`` across the two nodes, 4 distinct ranks; pmi2 is
  the one PMI both releases ship (Debian's 26.05 has no pmix plugin: ``srun
  --mpi=list`` says none, cray_shasta, pmi2), and jobs on 26.05 see a userland without
  MPI: the MPI library is the container's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]


def site_bridge(tb: Testbed, name: str) -> Bridge:
    """A Bridge with the testbed's own site file (MPI and GPU settings) and the default SIF
    cache of the test user (the one tests/testbed/test_render_jobs.py fills)."""
    b = Bridge(tb, name)
    text = (REPO / "site-configs" / "testbed.toml").read_text()
    b.site = b.write("site.toml", text)
    b.env["HPCBRIDGE_SITE_CONFIG"] = str(b.site)
    b.env["HPCBRIDGE_CACHE_DIR"] = str(tb.user.home / ".cache" / "hpcbridge")
    return b


def run_and_log(b: Bridge, job: Path) -> str:
    sub = b.submit(job)["id"]
    watched = b.run("watch", sub, "--interval", "1", timeout=900)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert b.status(sub)["counts"] == {"COMPLETED": 1}
    return str(b.ok("logs", sub).stdout)


def test_gpu_job_sees_its_gpus(cluster: Testbed) -> None:
    b = site_bridge(cluster, "gpu")
    job = b.write(
        "gpu.toml",
        f'name = "gpu"\nimage = "docker://{cluster.image("busybox").ref}"\n'
        'command = ["sh", "-c", "echo CVD=[$CUDA_VISIBLE_DEVICES] on $(hostname)"]\n'
        '[resources]\ntime = "00:05:00"\n[gpu]\ncount = 2\n',
    )
    log = run_and_log(b, job)
    m = re.search(r"CVD=\[([^\]]*)\] on (\S+)", log)
    assert m and m.group(1) == "0,1" and m.group(2) in cluster.nodes, log


def test_mpich_pmi2_two_nodes(cluster: Testbed) -> None:
    b = site_bridge(cluster, "mpi")
    job = b.write(
        "mpi.toml",
        f'name = "mpi"\nimage = "docker://{cluster.image("mpi").ref}"\n'
        'command = ["/opt/hello-mpich"]\n'
        '[resources]\nnodes = 2\nntasks_per_node = 2\ntime = "00:05:00"\n'
        '[mpi]\ntype = "srun"\nflavor = "mpich"\n',
    )
    script = b.ok("submit", "--dry-run", str(job)).stdout
    assert 'srun --mpi=pmi2 "${hpcb_launch[@]}"' in script
    log = run_and_log(b, job)
    ranks = [
        dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        for line in log.splitlines()
        if line.startswith("hello rank=")
    ]
    assert sorted(int(r["rank"]) for r in ranks) == [0, 1, 2, 3], log
    assert {r["size"] for r in ranks} == {"4"} and {r["host"] for r in ranks} == {"n1", "n2"}
    assert {r["flavour"] for r in ranks} == {"mpich"}, log
