"""The job's GPU request and partition, from its Slurm options, against the site's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.config import Config, load_config
from hpcbridge.errors import JobSpecError
from hpcbridge.pyxis.resources import job_resources, job_words
from hpcbridge.pyxis.srun import asks_for_gpus, option_values, split_srun

SITE = """
[partitions.cpu]
default = true
max_nodes = 4
max_time = "04:00:00"
[partitions.gpu]
gpu_vendor = "nvidia"
gpus_per_node = 4
[partitions.mi250]
gpu_vendor = "amd"
"""


def site(tmp: Path, text: str = SITE) -> Config:
    path = tmp / "site.toml"
    path.write_text(text)
    return load_config(
        {},
        environ={"HPCBRIDGE_SITE_CONFIG": str(path), "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)},
    )


@pytest.mark.parametrize(
    ("words", "gpus"),
    [
        (["--gres=gpu:4"], True),
        (["--gres=gpu:a100:2,craynetwork:1"], True),
        (["--gres", "gpu"], True),
        (["--gres=gpu:0"], False),
        (["--gpus=2"], True),
        (["--gpus-per-node", "8"], True),
        (["--gpus-per-task=1"], True),
        (["-G", "1"], True),
        (["-G1"], True),
        (["--gres=craynetwork:1", "-N", "2"], False),
    ],
)
def test_gpu_requests(words: list[str], gpus: bool) -> None:
    assert asks_for_gpus(words) is gpus


def test_option_values_in_every_form() -> None:
    assert option_values(["-p", "a", "--partition=b", "-pc", "--partition", "d"], "partition", "p") == [
        "a", "b", "c", "d"
    ]  # fmt: skip


def test_split_srun_finds_the_command() -> None:
    line = split_srun(
        ["-lN2", "--ntasks", "4", "--container-image", "x:1", "-o", "f", "cmd", "-n", "1"]
    )
    assert line.slurm == ["-lN2", "--ntasks", "4", "-o", "f"]
    assert line.pyxis.image == "x:1" and line.command == ["cmd", "-n", "1"]
    assert split_srun(["--container=/bundle", "--", "cmd"]).slurm == ["--container=/bundle", "--"]


def test_gpu_vendor_from_partition_and_site(tmp_path: Path) -> None:
    cfg = site(tmp_path)
    assert job_resources(["-p", "gpu", "--gres=gpu:2"], cfg).gpu_vendor == "nvidia"
    assert job_resources(["--partition=mi250"], cfg).gpu_vendor == "amd"  # a GPU partition
    assert job_resources(["-N", "2"], cfg).gpu_vendor is None  # the default cpu partition
    bare = load_config({}, environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "x")})
    got = job_resources(["--gpus-per-node=1"], bare)
    assert got.gpu_vendor == "nvidia" and "--nv" in got.notes[0]


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        (["-p", "gpuu"], "--partition=gpuu is not a partition of this site (did you mean 'gpu'?"),
        (["--gres=gpu:1"], "GPUs asked for (--gres/--gpus) on partition 'cpu'"),
        (["-p", "cpu", "-N", "8"], "--nodes=8 is above the 4 nodes of partition 'cpu'"),
        (["--time=5:00:00"], "--time=5:00:00 is above the maximum 04:00:00"),
        (["-p", "gpu", "--gres=gpu:8"], "8 GPUs per node asked for, partition 'gpu' has 4"),
    ],
)
def test_site_rules_in_sbatch_words(tmp_path: Path, words: list[str], needle: str) -> None:
    with pytest.raises(JobSpecError) as err:
        job_resources(words, site(tmp_path))
    assert needle in str(err.value)


def test_precedence_header_environment_command_line() -> None:
    words = job_words([["-p", "a"], ["--gres=gpu:1"]], {"SBATCH_PARTITION": "b"}, ["-p", "c"])
    assert option_values(words, "partition", "p") == ["a", "b", "c"]  # the last wins
