"""Host MPI across the testbed's nodes (no container): which launcher/MPI pairings work.

Each slurmd runs in its own UTS namespace, so ranks on n1 and n2 see distinct
hostnames while sharing one kernel (and loopback).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.api import Testbed

HELLO = r"""
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rank, size, sum = 0; char host[256];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank=%d size=%d host=%s sum=%d\n", rank, size, host, sum);
    MPI_Finalize();
    return 0;
}
"""


@pytest.fixture(scope="module")
def hello(testbed: Testbed) -> dict[str, Path]:
    where = testbed.user_dir("mpi-hello")
    testbed.run_as_user(["sh", "-c", "cat > hello.c"], cwd=where, input=HELLO)
    out = {}
    for flavour, cc in (("openmpi", "mpicc.openmpi"), ("mpich", "mpicc.mpich")):
        exe = where / f"hello-{flavour}"
        testbed.run_as_user([cc, "-o", str(exe), "hello.c"], cwd=where, timeout=600)
        out[flavour] = exe
    return out


def _ranks(stdout: str) -> list[dict[str, str]]:
    rows = []
    for line in stdout.splitlines():
        if line.startswith("rank="):
            rows.append(dict(f.split("=", 1) for f in line.split()))
    return sorted(rows, key=lambda r: int(r["rank"]))


@pytest.mark.parametrize(("flavour", "mpi"), [("openmpi", "pmix"), ("mpich", "pmi2")])
def test_srun_mpi_two_ranks_on_two_nodes(
    testbed: Testbed, hello: dict[str, Path], user_dir: Path, flavour: str, mpi: str
) -> None:
    done = testbed.run_as_user(
        ["srun", f"--mpi={mpi}", "-N2", "-n2", str(hello[flavour])], cwd=user_dir, timeout=600
    )
    ranks = _ranks(done.stdout)
    assert [r["rank"] for r in ranks] == ["0", "1"]
    assert {r["size"] for r in ranks} == {"2"}
    assert [r["host"] for r in ranks] == ["n1", "n2"]
    assert {r["sum"] for r in ranks} == {"1"}  # the allreduce crossed the nodes


def test_mpirun_inside_an_allocation(
    testbed: Testbed, hello: dict[str, Path], user_dir: Path
) -> None:
    done = testbed.run_as_user(
        ["salloc", "-N2", "-n2", "mpirun.openmpi", "-n", "2", str(hello["openmpi"])],
        cwd=user_dir,
        timeout=600,
    )
    ranks = _ranks(done.stdout)
    assert sorted(r["host"] for r in ranks) == ["n1", "n2"]
    assert {r["size"] for r in ranks} == {"2"}


def test_mpich_with_pmix_runs_independent_singletons(
    testbed: Testbed, hello: dict[str, Path], user_dir: Path
) -> None:
    """The known-bad pairing hpcbridge must refuse or warn about: no error, wrong result."""
    done = testbed.run_as_user(
        ["srun", "--mpi=pmix", "-N2", "-n2", str(hello["mpich"])], cwd=user_dir, timeout=600
    )
    ranks = _ranks(done.stdout)
    assert len(ranks) == 2
    assert {r["rank"] for r in ranks} == {"0"}
    assert {r["size"] for r in ranks} == {"1"}


def test_openmpi_with_pmi2_fails_in_mpi_init(
    testbed: Testbed, hello: dict[str, Path], user_dir: Path
) -> None:
    done = testbed.run_as_user(
        ["srun", "--mpi=pmi2", "-N2", "-n2", str(hello["openmpi"])],
        cwd=user_dir,
        timeout=600,
        check=False,
    )
    assert done.returncode != 0
    assert _ranks(done.stdout) == []
