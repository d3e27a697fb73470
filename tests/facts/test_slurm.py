"""Issue 2 must-show on the real testbed: Slurm jobs as the non-root test user."""

from __future__ import annotations

import time
from pathlib import Path

from tests.testbed.api import Testbed


def test_sbatch_job_runs_as_the_test_user(testbed: Testbed, user_dir: Path) -> None:
    job = testbed.sbatch(
        "-o", "out.txt", "--wrap", "id -un; id -u; echo SLURM_CONF=$SLURM_CONF", cwd=user_dir
    )
    states = testbed.wait_for_jobs([job], timeout=600)
    assert states == {job: "COMPLETED"}
    lines = (user_dir / "out.txt").read_text().splitlines()
    assert lines[0] == testbed.user.name
    assert lines[1] == str(testbed.user.uid) != "0"
    assert lines[2] == f"SLURM_CONF={testbed.slurm_conf}"
    assert (user_dir / "out.txt").stat().st_uid == testbed.user.uid


def test_failed_job_reports_its_exit_code(testbed: Testbed, user_dir: Path) -> None:
    job = testbed.sbatch("-o", "out.txt", "--wrap", "exit 3", cwd=user_dir)
    assert testbed.wait_for_jobs([job], timeout=600) == {job: "FAILED"}
    shown = testbed.run(["scontrol", "-o", "show", "job", job]).stdout
    assert "ExitCode=3:0" in shown


def test_two_node_srun_shows_two_hostnames(testbed: Testbed, user_dir: Path) -> None:
    done = testbed.run_as_user(["srun", "-N2", "-n2", "hostname"], cwd=user_dir, timeout=600)
    assert sorted(done.stdout.split()) == testbed.nodes[:2] == ["n1", "n2"]


def test_two_node_batch_job_sees_both_nodes(testbed: Testbed, user_dir: Path) -> None:
    job = testbed.sbatch(
        "-N2",
        "-n2",
        "-o",
        "out.txt",
        "--wrap",
        "echo NODELIST=$SLURM_JOB_NODELIST; srun hostname",
        cwd=user_dir,
    )
    assert testbed.wait_for_jobs([job], timeout=600) == {job: "COMPLETED"}
    lines = (user_dir / "out.txt").read_text().split()
    assert lines[0] == "NODELIST=n[1-2]"
    assert sorted(lines[1:]) == ["n1", "n2"]


def test_gres_gpu_sets_cuda_visible_devices(testbed: Testbed, user_dir: Path) -> None:
    one = testbed.sbatch(
        "--gres=gpu:1", "-o", "one.txt", "--wrap", "echo CVD=$CUDA_VISIBLE_DEVICES", cwd=user_dir
    )
    two = testbed.sbatch(
        "--gres=gpu:2", "-o", "two.txt", "--wrap", "echo CVD=$CUDA_VISIBLE_DEVICES", cwd=user_dir
    )
    none = testbed.sbatch(
        "-o", "none.txt", "--wrap", "echo CVD=${CUDA_VISIBLE_DEVICES-unset}", cwd=user_dir
    )
    states = testbed.wait_for_jobs([one, two, none], timeout=600)
    assert set(states.values()) == {"COMPLETED"}
    assert (user_dir / "one.txt").read_text().strip() in ("CVD=0", "CVD=1")
    assert (user_dir / "two.txt").read_text().strip() == "CVD=0,1"
    assert (user_dir / "none.txt").read_text().strip() == "CVD=unset"


def test_more_gpus_than_a_node_has_is_refused(testbed: Testbed, user_dir: Path) -> None:
    done = testbed.run_as_user(
        ["sbatch", "--gres=gpu:3", "--wrap", "true"], cwd=user_dir, check=False
    )
    assert done.returncode != 0
    assert "Requested node configuration is not available" in done.stderr


def test_array_job_tasks_each_run_once(testbed: Testbed, user_dir: Path) -> None:
    job = testbed.sbatch(
        "--array=0-9",
        "-o",
        "log_%A_%a.out",
        "--wrap",
        "echo $SLURM_ARRAY_TASK_ID > task_$SLURM_ARRAY_TASK_ID",
        cwd=user_dir,
    )
    states = testbed.wait_for_jobs([job], timeout=600)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(10)}
    for i in range(10):
        assert (user_dir / f"task_{i}").read_text().strip() == str(i)


def test_job_tmpfs_is_per_node(testbed: Testbed, user_dir: Path) -> None:
    done = testbed.run_as_user(
        [
            "srun",
            "-N2",
            "-n2",
            "sh",
            "-c",
            "echo $(hostname) $SLURM_JOB_TMPFS; scontrol show config | grep ^TmpFS",
        ],
        cwd=user_dir,
        check=False,
    )
    # Slurm 22.05 exports no TMPFS variable: check what the config says instead.
    assert done.returncode == 0, done.stderr
    assert f"{testbed.state_dir}/slurm/tmp/%n" in done.stdout
    for node in ("n1", "n2"):
        assert (testbed.state_dir / "slurm" / "tmp" / node).is_dir()


def test_cli_status_env_and_leftovers_see_the_running_testbed(
    testbed: Testbed, user_dir: Path
) -> None:
    py = [str(testbed.repo / ".venv" / "bin" / "python"), "-m", "tests.testbed"]
    env = {"HPCBRIDGE_TESTBED_DIR": str(testbed.state_dir)}
    status = testbed.run([*py, "status"], cwd=testbed.repo, env=env)
    assert "nodes: n1=" in status.stdout
    assert "slurmctld" in status.stdout
    shell = testbed.run([*py, "env"], cwd=testbed.repo, env=env).stdout
    assert f"export SLURM_CONF={testbed.slurm_conf}" in shell
    job = testbed.sbatch("-o", "/dev/null", "--wrap", "sleep 20", cwd=user_dir)
    try:
        deadline = 60.0
        while testbed.job_states([job]).get(job) != "RUNNING":
            time.sleep(0.5)
            deadline -= 0.5
            assert deadline > 0, "job did not start"
        found = testbed.run([*py, "leftovers"], cwd=testbed.repo, env=env, check=False)
        assert found.returncode == 1  # the testbed is up: its daemons are "left over"
        for name in ("slurmctld", "slurmd", "munged", "slurmstepd"):
            assert f" {name} (" in found.stderr, name
        assert f"[{job}.batch]" in found.stderr
    finally:
        testbed.run(["scancel", job], check=False)


def test_controller_stopped_and_back(testbed: Testbed, user_dir: Path) -> None:
    job = testbed.sbatch("-o", "out.txt", "--wrap", "sleep 3; echo done", cwd=user_dir)
    with testbed.slurmctld_stopped():
        down = testbed.run_as_user(["squeue", "-h"], check=False, timeout=60)
        assert down.returncode != 0
        assert "Unable to contact slurm controller" in down.stderr
    assert testbed.wait_for_jobs([job], timeout=600) == {job: "COMPLETED"}
    assert (user_dir / "out.txt").read_text().strip() == "done"
