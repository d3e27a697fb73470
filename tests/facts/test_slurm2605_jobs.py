"""Facts of the Slurm 26.05 testbed cluster (Debian sid packages, daemons in a pivot_root
sandbox): jobs as the test user, two nodes, fake GPUs, rootless Apptainer in a job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.testbed import fixtures
from tests.testbed.api import Testbed


@pytest.fixture
def tb(request: pytest.FixtureRequest) -> Testbed:
    return fixtures.cluster_for(request.config, "26.05")


@pytest.fixture
def work(tb: Testbed) -> Path:
    return tb.user_dir("slurm2605")


def test_the_cluster_is_slurm_26_05_from_debian_sid(tb: Testbed) -> None:
    assert tb.release == "26.05"
    done = tb.run_as_user(["scontrol", "--version"])
    assert done.stdout.strip() == "slurm-wlm 26.05.5"
    assert tb.env["PATH"].split(":")[0] == str(tb.state_dir / "sid" / "bin")
    assert tb.slurm_facts["version"].startswith("26.05.5")
    conf = tb.run(["scontrol", "show", "config"]).stdout
    assert "ClusterName             = hpcbtb2605" in conf
    assert "FirstJobId              = 2600001" in conf


def test_a_job_runs_as_the_test_user_with_a_26_05_job_id(tb: Testbed, work: Path) -> None:
    job = tb.sbatch("-o", "out.txt", "--wrap", "id -un; id -u; hostname", cwd=work)
    assert int(job) >= 2_600_001
    assert tb.wait_for_jobs([job], timeout=300) == {job: "COMPLETED"}
    name, uid, host = (work / "out.txt").read_text().split()
    assert (name, uid) == (tb.user.name, str(tb.user.uid))
    assert host in ("n1", "n2")


def test_two_node_srun_hostname(tb: Testbed, work: Path) -> None:
    done = tb.run_as_user(["srun", "-N2", "-n2", "hostname"], cwd=work, timeout=300)
    assert sorted(done.stdout.split()) == ["n1", "n2"]
    job = tb.sbatch(
        "-N2", "-n2", "-o", "out.txt", "--wrap", "echo $SLURM_JOB_NODELIST; srun hostname", cwd=work
    )
    assert tb.wait_for_jobs([job], timeout=300) == {job: "COMPLETED"}
    first, *hosts = (work / "out.txt").read_text().split()
    assert first == "n[1-2]"
    assert sorted(hosts) == ["n1", "n2"]


def test_gres_gpu_sets_cuda_visible_devices(tb: Testbed, work: Path) -> None:
    one = tb.sbatch(
        "--gres=gpu:1", "-o", "one.txt", "--wrap", "echo $CUDA_VISIBLE_DEVICES", cwd=work
    )
    two = tb.sbatch(
        "--gres=gpu:2", "-o", "two.txt", "--wrap", "echo $CUDA_VISIBLE_DEVICES", cwd=work
    )
    none = tb.sbatch("-o", "none.txt", "--wrap", "echo ${CUDA_VISIBLE_DEVICES-unset}", cwd=work)
    assert set(tb.wait_for_jobs([one, two, none], timeout=300).values()) == {"COMPLETED"}
    assert (work / "one.txt").read_text().strip() in ("0", "1")
    assert (work / "two.txt").read_text().strip() == "0,1"
    assert (work / "none.txt").read_text().strip() == "unset"
    refused = tb.run_as_user(["sbatch", "--gres=gpu:3", "--wrap", "true"], cwd=work, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "sbatch: error: Batch job submission failed: Requested node configuration is not available"
    )


def test_srun_offers_no_pmix(tb: Testbed) -> None:
    """Debian sid builds Slurm 26.05 without the pmix plugin (PMIx 7 is a release candidate)."""
    done = tb.run_as_user(["srun", "--mpi=list"])
    assert done.stdout.split() == [
        "MPI",
        "plugin",
        "types",
        "are...",
        "none",
        "cray_shasta",
        "pmi2",
    ]


def test_rootless_apptainer_exec_in_a_job(tb: Testbed, work: Path) -> None:
    image = tb.image("busybox")
    sif = work / "busybox.sif"
    tb.run_as_user(
        [tb.apptainer, "-q", "build", "--no-https", sif, f"docker://{image.ref}"],
        cwd=work,
        timeout=600,
    )
    (work / "in").mkdir()
    (work / "in" / "data.txt").write_text("hello from the login node\n")
    (work / "out").mkdir()
    for p in (work / "in", work / "in" / "data.txt", work / "out"):
        os.chown(p, tb.user.uid, tb.user.gid)
    script = (
        "#!/bin/sh\nset -e\ncommand -v apptainer\n"
        f'apptainer exec --bind "$PWD/in:/input:ro" --bind "$PWD/out:/output" {sif} '
        "sh -c 'cat /input/data.txt > /output/copy.txt; hostname >> /output/copy.txt; "
        "id -u >> /output/copy.txt; touch /input/x 2>/dev/null || echo ro >> /output/copy.txt'\n"
    )
    (work / "job.sh").write_text(script)
    job = tb.sbatch("-o", "job.out", "job.sh", cwd=work)
    assert tb.wait_for_jobs([job], timeout=600) == {job: "COMPLETED"}, (
        work / "job.out"
    ).read_text()
    assert (work / "job.out").read_text().split() == [str(tb.apptainer)]
    lines = (work / "out" / "copy.txt").read_text().splitlines()
    assert lines[0] == "hello from the login node"
    assert lines[1] in ("n1", "n2")
    assert lines[2] == str(tb.user.uid)
    assert lines[3] == "ro"
    assert (work / "out" / "copy.txt").stat().st_uid == tb.user.uid
