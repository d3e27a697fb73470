"""Every shipped example in site-configs/ passes `config check`; testbed.toml matches the testbed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpcbridge.config import load_config
from hpcbridge.config.loader import check_file

SITE_CONFIGS = Path(__file__).resolve().parents[2] / "site-configs"
FILES = sorted(SITE_CONFIGS.glob("*.toml"))
ENV = {"HOME": "/home/alice", "USER": "alice"}


def test_the_five_examples_exist() -> None:
    names = {p.name for p in FILES}
    assert {
        "generic-cpu.toml",
        "nvidia-gpu.toml",
        "amd-rocm.toml",
        "mpi-cluster.toml",
        "testbed.toml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_passes_check(path: Path, tmp_path: Path) -> None:
    assert check_file(path, environ=ENV) == []
    cfg = load_config(cwd=tmp_path, environ={**ENV, "HPCBRIDGE_SITE_CONFIG": str(path)})
    assert cfg.layers == (str(path),)
    assert cfg.partitions, "every example describes its partitions"
    assert cfg.default_partition is not None


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_is_commented(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# hpcbridge site configuration")
    assert text.count("#") >= 5


@pytest.mark.parametrize(
    ("release", "site"), [("22.05", "testbed.toml"), ("26.05", "testbed-26.05.toml")]
)
def test_testbed_config_matches_the_testbed_slurm_conf(
    release: str, site: str, tmp_path: Path
) -> None:
    """testbed.toml (testbed-26.05.toml) describes what tests/testbed writes into slurm.conf
    for that release (default knobs)."""
    from tests.testbed import config as tb

    conf = tb.slurm_conf(tb.Layout(tmp_path), tb.Knobs(slurm=release), "localhost")
    partitions = dict(re.findall(r"^PartitionName=(\S+) (.*)$", conf, re.M))
    nodes = re.findall(r"^NodeName=(\S+) .*CPUs=(\d+) RealMemory=(\d+) Gres=gpu:(\d+)", conf, re.M)
    cluster = re.search(r"^ClusterName=(\S+)$", conf, re.M)
    max_array = re.search(r"^MaxArraySize=(\d+)$", conf, re.M)
    assert nodes and cluster and max_array

    cfg = load_config(
        cwd=tmp_path, environ={**ENV, "HPCBRIDGE_SITE_CONFIG": str(SITE_CONFIGS / site)}
    )
    assert set(cfg.partitions) == set(partitions)
    for name, line in partitions.items():
        part = cfg.partitions[name]
        assert part.default == ("Default=YES" in line)
        assert ("MaxTime=INFINITE" in line) == (part.max_time is None)
        assert part.max_nodes == len(nodes)
        assert part.cpus_per_node == int(nodes[0][1])
        assert part.mem_per_node == int(nodes[0][2])
        assert part.gpus_per_node == int(nodes[0][3])
        assert part.gpu_vendor == "nvidia"  # fake /dev/nvidia* devices
    assert cfg.scheduler.cluster == cluster.group(1)
    assert cfg.limits.max_array_size == int(max_array.group(1))
    assert cfg.runtime.version == "1.4.5"
