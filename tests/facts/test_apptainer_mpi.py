"""The testbed's `mpi` image runs its hello worlds across the two Slurm nodes through the
real Apptainer (hybrid model: host srun launches `apptainer exec` per rank), which shows
its Open MPI / MPICH match the host's (same Debian release and versions)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HELLO = re.compile(r"^hello rank=(\d+) size=(\d+) host=(\S+) node=(\S+) flavour=(\S+)$")


@pytest.fixture(scope="module")
def mpi_sif(testbed: Any) -> Iterator[Path]:
    sif = testbed.user_dir("mpi-sif") / "mpi.sif"
    testbed.run_as_user(
        ["apptainer", "build", "--no-https", sif, f"docker://{testbed.image('mpi').ref}"],
        timeout=600,
    )
    yield sif
    shutil.rmtree(sif.parent, ignore_errors=True)


@pytest.mark.parametrize(
    ("flavour", "plugin", "binary", "extra"),
    [
        ("openmpi", "pmix", "/opt/hello-ompi", []),
        # one rank per node here; with 2+ ranks per node MPICH's UCX needs UCX_TLS=self,tcp
        ("mpich", "pmi2", "/opt/hello-mpich", ["--env", "UCX_TLS=self,tcp"]),
    ],
)
def test_two_ranks_on_two_nodes(
    testbed: Any, mpi_sif: Path, flavour: str, plugin: str, binary: str, extra: list[str]
) -> None:
    done = testbed.run_as_user(
        ["srun", f"--mpi={plugin}", "-N2", "-n2", "apptainer", "exec", *extra, mpi_sif, binary],
        cwd=mpi_sif.parent,
        timeout=180,
    )
    ranks = [m.groups() for m in map(HELLO.match, done.stdout.splitlines()) if m]
    assert sorted(r[0] for r in ranks) == ["0", "1"], done.stdout + done.stderr
    assert {r[1] for r in ranks} == {"2"}
    assert len({r[3] for r in ranks}) == 2  # two distinct Slurm nodes
    assert {r[4] for r in ranks} == {flavour}


def test_mpi_labels(testbed: Any, mpi_sif: Path) -> None:
    import json

    done = testbed.run_as_user(["apptainer", "inspect", "--json", mpi_sif])
    labels = json.loads(done.stdout)["data"]["attributes"]["labels"]
    assert labels["org.hpcbridge.mpi"] == "openmpi,mpich"
    assert labels["org.hpcbridge.mpi.openmpi.binary"] == "/opt/hello-ompi"
