"""site-configs/testbed.toml against the running testbed, and `config` run as the test user."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hpcbridge.config import load_config
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

TESTBED_TOML = Path(__file__).resolve().parents[2] / "site-configs" / "testbed.toml"


def _fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def test_testbed_toml_matches_the_live_cluster(testbed: Testbed, tmp_path: Path) -> None:
    parts = testbed.run_as_user(["scontrol", "-o", "show", "partition"]).stdout.splitlines()
    nodes = testbed.run_as_user(["scontrol", "-o", "show", "node"]).stdout.splitlines()
    conf = testbed.run_as_user(["scontrol", "show", "config"]).stdout
    cfg = load_config(
        cwd=tmp_path,
        environ={"HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": str(testbed.site_config)},
    )

    live = {_fields(p)["PartitionName"]: _fields(p) for p in parts}
    assert set(cfg.partitions) == set(live)
    node_fields = [_fields(n) for n in nodes]
    for name, fields in live.items():
        part = cfg.partitions[name]
        assert part.default == (fields["Default"] == "YES")
        assert (fields["MaxTime"] == "UNLIMITED") == (part.max_time is None)
        assert part.max_nodes == int(fields["TotalNodes"])
        for node in node_fields:
            assert int(node["CPUTot"]) == part.cpus_per_node
            assert int(node["RealMemory"]) == part.mem_per_node
            gres = re.search(r"gpu:(\d+)", node["Gres"])
            assert gres and int(gres.group(1)) == part.gpus_per_node
    assert re.search(rf"^ClusterName\s*=\s*{cfg.scheduler.cluster}$", conf, re.M)
    assert re.search(rf"^MaxArraySize\s*=\s*{cfg.limits.max_array_size}$", conf, re.M)


def test_config_show_and_check_as_the_test_user(testbed: Testbed) -> None:
    work = testbed.user_dir("config-show")
    (work / "hpcbridge.toml").write_text("[convert]\nlevel = 3\n")
    env = {"HPCBRIDGE_SITE_CONFIG": str(TESTBED_TOML), "HPCBRIDGE_POLLING_MIN_INTERVAL": "0.2"}
    done = testbed.hpcbridge("config", "show", "--json", "--sources", cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    home = str(testbed.user.home)
    assert doc["config"]["cache"]["dir"] == f"{home}/.cache/hpcbridge"
    assert doc["config"]["state"]["dir"] == f"{home}/.local/state/hpcbridge"
    assert doc["sources"]["convert.level"] == str(work / "hpcbridge.toml")
    assert doc["config"]["polling"]["min_interval"] == 1.0  # the site floor wins
    assert "below the site minimum 1 s" in done.stderr
    assert doc["config"]["partitions"]["debug"]["gpus_per_node"] == 2

    check = testbed.hpcbridge("config", "check", str(TESTBED_TOML), cwd=work)
    assert (check.returncode, check.stdout.strip()) == (0, f"{TESTBED_TOML}: ok")


def test_unreadable_home_is_one_clear_error(testbed: Testbed) -> None:
    """A HOME the user cannot read (here /root) gives one error line, not a traceback."""
    res = testbed.hpcbridge("config", "show", env={"HOME": "/root", "XDG_CONFIG_HOME": ""})
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "permission denied" in lines[0]
    assert "Traceback" not in res.stderr
