"""validate_job and the effective_* helpers: a job checked against the site."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbridge.config import (
    Config,
    effective_gpu_vendor,
    effective_gres_name,
    effective_partition_name,
    effective_pmi,
    effective_time,
    load_config,
    resolve_partition,
    validate_job,
)
from hpcbridge.errors import JobSpecError
from hpcbridge.job.load import load_job
from hpcbridge.job.spec import JobSpec

SITE = """
[binds]
deny = ["/", "/etc", "/proc/**", "/root/**"]

[limits]
max_tasks = 100

[partitions.cpu]
default = true
max_time = "04:00:00"
default_time = "00:30:00"
max_nodes = 4
cpus_per_node = 16
mem_per_node = "64G"

[partitions.gpu]
max_time = "1-00:00:00"
gpu_vendor = "nvidia"
gres_name = "tesla"
gpus_per_node = 2
default_mpi = "pmi2"

[partitions.rocm]
gpu_vendor = "amd"
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    return load_config(
        cwd=tmp_path, environ={"HOME": str(tmp_path / "home"), "HPCBRIDGE_SITE_CONFIG": str(site)}
    )


def make_job(tmp_path: Path, extra: str = "", sets: tuple[str, ...] = ()) -> JobSpec:
    path = tmp_path / "job.toml"
    path.write_text('image = "busybox"\ncommand = ["true"]\n' + extra)
    return load_job(path, sets)


def check(tmp_path: Path, cfg: Config, extra: str = "", sets: tuple[str, ...] = ()) -> None:
    validate_job(make_job(tmp_path, extra, sets), cfg)


def test_valid_job_on_the_default_partition(tmp_path: Path, cfg: Config) -> None:
    job = make_job(tmp_path)
    validate_job(job, cfg)
    assert resolve_partition(job, cfg) is cfg.partitions["cpu"]
    assert effective_partition_name(job, cfg) == "cpu"
    assert effective_time(job, cfg) == 1800  # the partition's default_time
    assert effective_gpu_vendor(job, cfg) is None


def test_misspelled_partition_lists_valid_ones(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError) as info:
        check(tmp_path, cfg, sets=("resources.partition=gpus",))
    assert "resources.partition = 'gpus' is not a partition" in info.value.message
    assert info.value.hint == "did you mean 'gpu'? partitions: cpu, gpu, rocm"


def test_any_partition_when_the_site_describes_none(tmp_path: Path) -> None:
    cfg = load_config(
        cwd=tmp_path, environ={"HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": os.devnull}
    )
    job = make_job(tmp_path, sets=("resources.partition=whatever", "resources.time=99:00:00"))
    validate_job(job, cfg)
    assert resolve_partition(job, cfg) is None
    assert effective_partition_name(job, cfg) == "whatever"


def test_time_above_partition_max(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError) as info:
        check(tmp_path, cfg, sets=("resources.time=5:00:00",))
    assert (
        info.value.message
        == "resources.time = 05:00:00 is above the maximum 04:00:00 of partition 'cpu'"
    )
    assert "at most 04:00:00" in (info.value.hint or "")
    check(tmp_path, cfg, sets=("resources.time=04:00:00",))


def test_unlimited_partition_takes_any_time(tmp_path: Path, cfg: Config) -> None:
    check(tmp_path, cfg, sets=("resources.partition=rocm", "resources.time=30-00:00:00"))


def test_gpu_on_a_partition_without_gpus(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError) as info:
        check(tmp_path, cfg, "[gpu]\ncount = 1\n")
    assert info.value.message == "GPUs requested on partition 'cpu', which has no GPUs"
    assert info.value.hint == "choose one of: gpu, rocm"


def test_gpu_vendor_mismatch_and_count(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match="has nvidia GPUs"):
        check(tmp_path, cfg, "[gpu]\nvendor = 'amd'\n", ("resources.partition=gpu",))
    with pytest.raises(JobSpecError, match="3 GPUs per node requested, partition 'gpu' has 2"):
        check(tmp_path, cfg, "[resources]\npartition = 'gpu'\ngpus_per_node = 3\n")


def test_gpu_vendor_and_gres_name_come_from_the_partition(tmp_path: Path, cfg: Config) -> None:
    job = make_job(tmp_path, "[resources]\npartition = 'gpu'\ngpus = 1\n")
    validate_job(job, cfg)
    assert effective_gpu_vendor(job, cfg) == "nvidia"
    assert effective_gres_name(job, cfg) == "tesla"
    amd = make_job(tmp_path, "[gpu]\ncount = 1\n", ("resources.partition=rocm",))
    assert effective_gpu_vendor(amd, cfg) == "amd"
    assert effective_gres_name(amd, cfg) == "gpu"  # gpu.gres_name default


def test_resource_limits(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match=r"resources.nodes = 5 is above the 4 nodes"):
        check(tmp_path, cfg, sets=("resources.nodes=5",))
    with pytest.raises(JobSpecError, match=r"cpus_per_task = 32 is above the 16 CPUs"):
        check(tmp_path, cfg, sets=("resources.cpus_per_task=32",))
    with pytest.raises(JobSpecError, match=r"resources.mem = 128G is above the 64G"):
        check(tmp_path, cfg, sets=("resources.mem=128G",))


def test_max_tasks(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match="200 tasks, above this site's limit of 100"):
        check(tmp_path, cfg, sets=("array=0-199",))


def test_denied_bind_source(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError) as info:
        check(tmp_path, cfg, 'binds = ["/etc:/host-etc:ro"]\n')
    assert info.value.message.startswith(
        "binds[0].src = '/etc' is denied by the site's bind deny-list"
    )
    with pytest.raises(JobSpecError, match="deny-list"):
        check(tmp_path, cfg, 'binds = ["/proc/self:/x"]\n')  # under a /** entry


def test_denied_through_a_symlink(tmp_path: Path, cfg: Config) -> None:
    (tmp_path / "sneaky").symlink_to("/etc")
    with pytest.raises(JobSpecError, match="deny-list"):
        check(tmp_path, cfg, 'binds = ["sneaky:/x"]\n')


def test_missing_bind_source(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError) as info:
        check(tmp_path, cfg, 'binds = ["missing:/data"]\n')
    assert info.value.message == f"binds[0].src = '{tmp_path}/missing' does not exist"
    (tmp_path / "missing").mkdir()
    check(tmp_path, cfg, 'binds = ["missing:/data"]\n')


def test_per_task_bind_source_need_not_exist(tmp_path: Path, cfg: Config) -> None:
    check(tmp_path, cfg, 'binds = ["out/{task}:/output"]\n')


def test_per_task_bind_under_a_denied_tree(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match="deny-list"):
        check(tmp_path, cfg, 'binds = ["/root/out/{task}:/output"]\n')


def test_allow_list(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    ok = tmp_path / "allowed"
    ok.mkdir()
    (tmp_path / "other").mkdir()
    site.write_text(f"[binds]\nallow = ['{ok}']\n")
    cfg = load_config(
        cwd=tmp_path, environ={"HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": str(site)}
    )
    check(tmp_path, cfg, f'binds = ["{ok}:/a"]\n')
    with pytest.raises(JobSpecError, match="outside the site's bind allow-list") as info:
        check(tmp_path, cfg, f'binds = ["{tmp_path}/other:/a"]\n')
    assert str(ok) in (info.value.hint or "")


def test_inputs_are_checked_against_the_policy(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match="input '/etc' is denied"):
        check(tmp_path, cfg, 'inputs = ["/etc"]\nbinds = [{src = "{input}", dst = "/in"}]\n')


def test_effective_pmi(tmp_path: Path, cfg: Config) -> None:
    srun = make_job(tmp_path, "[mpi]\ntype = 'srun'\n")
    assert effective_pmi(srun, cfg) == "pmix"  # cpu partition has no default_mpi: mpi.pmi
    on_gpu = make_job(tmp_path, "[mpi]\ntype = 'srun'\n", ("resources.partition=gpu",))
    assert effective_pmi(on_gpu, cfg) == "pmi2"  # the partition's default_mpi
    mpich = make_job(tmp_path, "[mpi]\ntype = 'srun'\nflavor = 'mpich'\n")
    assert effective_pmi(mpich, cfg) == "pmi2"  # by the image's flavour
    assert effective_pmi(make_job(tmp_path, "[mpi]\ntype = 'mpirun'\n"), cfg) is None


def test_known_bad_pairing_from_the_site_default(tmp_path: Path, cfg: Config) -> None:
    site = tmp_path / "s2.toml"
    site.write_text("[mpi]\nopenmpi_pmi = 'pmi2'\n")
    bad = load_config(
        cwd=tmp_path, environ={"HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": str(site)}
    )
    with pytest.raises(JobSpecError, match="site's PMI 'pmi2' does not work"):
        check(tmp_path, bad, "[mpi]\ntype = 'srun'\nflavor = 'openmpi'\n")


def test_bind_model_host_dir_checked(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(JobSpecError, match=r"mpi.host_mpi_dir = '/nonexistent/mpi' does not exist"):
        check(
            tmp_path,
            cfg,
            "[mpi]\ntype = 'mpirun'\nmodel = 'bind'\nhost_mpi_dir = '/nonexistent/mpi'\n",
        )
