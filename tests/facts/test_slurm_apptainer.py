"""A Slurm job running the real Apptainer on a SIF with a bound directory, as the test user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.testbed.api import Testbed


@pytest.fixture(scope="module")
def busybox_sif(testbed: Testbed) -> Path:
    """A SIF of the busybox test image, built by the real Apptainer from the local registry."""
    image = testbed.image("busybox")
    where = testbed.user_dir("sif")
    sif = where / "busybox.sif"
    testbed.run_as_user(
        [str(testbed.apptainer), "-q", "build", "--no-https", str(sif), f"docker://{image.ref}"],
        cwd=where,
        timeout=600,
    )
    assert sif.stat().st_size > 0
    return sif


def test_wrapper_is_first_on_the_job_path(testbed: Testbed, user_dir: Path) -> None:
    assert testbed.env["PATH"].split(":")[0] == str(testbed.apptainer.parent)
    job = testbed.sbatch(
        "-o", "out.txt", "--wrap", "command -v apptainer; command -v singularity", cwd=user_dir
    )
    assert testbed.wait_for_jobs([job], timeout=600) == {job: "COMPLETED"}
    assert (user_dir / "out.txt").read_text().split() == [
        str(testbed.apptainer),
        str(testbed.apptainer.parent / "singularity"),
    ]


def test_sbatch_job_runs_apptainer_exec_with_a_bound_directory(
    testbed: Testbed, user_dir: Path, busybox_sif: Path
) -> None:
    (user_dir / "in").mkdir()
    (user_dir / "in" / "data.txt").write_text("hello from the host\n")
    (user_dir / "out").mkdir()
    for p in (user_dir / "in", user_dir / "in" / "data.txt", user_dir / "out"):
        os.chown(p, testbed.user.uid, testbed.user.gid)
    script = (
        "#!/bin/sh\n"
        "set -e\n"
        f'apptainer exec --bind "$PWD/in:/input:ro" --bind "$PWD/out:/output" {busybox_sif} '
        "sh -c 'cat /input/data.txt > /output/copy.txt; hostname >> /output/copy.txt; "
        "id -u >> /output/copy.txt; touch /input/x 2>/dev/null || echo ro >> /output/copy.txt'\n"
    )
    (user_dir / "job.sh").write_text(script)
    job = testbed.sbatch("-o", "job.out", "job.sh", cwd=user_dir)
    states = testbed.wait_for_jobs([job], timeout=600)
    assert states == {job: "COMPLETED"}, (user_dir / "job.out").read_text()
    lines = (user_dir / "out" / "copy.txt").read_text().splitlines()
    assert lines[0] == "hello from the host"
    assert lines[1] in testbed.nodes
    assert lines[2] == str(testbed.user.uid)
    assert lines[3] == "ro"
    assert (user_dir / "out" / "copy.txt").stat().st_uid == testbed.user.uid


def test_gpu_job_sees_cuda_visible_devices_inside_the_container(
    testbed: Testbed, user_dir: Path, busybox_sif: Path
) -> None:
    job = testbed.sbatch(
        "--gres=gpu:1",
        "-o",
        "out.txt",
        "--wrap",
        f"apptainer exec --cleanenv --env CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES {busybox_sif} "
        "sh -c 'echo CVD=$CUDA_VISIBLE_DEVICES'",
        cwd=user_dir,
    )
    assert testbed.wait_for_jobs([job], timeout=600) == {job: "COMPLETED"}
    assert (user_dir / "out.txt").read_text().strip() in ("CVD=0", "CVD=1")
