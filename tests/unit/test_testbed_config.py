"""Pure parts of the testbed: knobs and the slurm.conf / gres.conf / slurmdbd.conf text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed import config as C

LAYOUT = C.Layout(Path("/st"))


def conf_map(text: str) -> dict[str, str]:
    """slurm.conf lines that set one key (NodeName/PartitionName lines excluded)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.partition("=")
        if key in ("NodeName", "PartitionName"):
            continue
        assert key not in out, f"{key} set twice"
        out[key] = value
    return out


def node_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("NodeName=")]


def test_default_conf_has_the_verified_settings() -> None:
    text = C.slurm_conf(LAYOUT, C.Knobs(), "vm")
    conf = conf_map(text)
    assert conf["AuthType"] == "auth/munge"
    assert conf["AuthInfo"] == "socket=/st/munge/munge.socket"
    assert conf["CredType"] == "cred/munge"
    assert conf["ProctrackType"] == "proctrack/linuxproc"
    assert conf["TaskPlugin"] == "task/none"
    assert conf["SelectType"] == "select/cons_tres"
    assert conf["SelectTypeParameters"] == "CR_Core"
    assert conf["SchedulerParameters"] == "batch_sched_delay=0"
    assert conf["SlurmdParameters"] == "config_overrides"
    assert conf["SlurmUser"] == "root"
    assert conf["ReturnToService"] == "2"
    assert conf["MailProg"] == "/bin/true"
    assert conf["PlugStackConfig"] == "/st/etc/plugstack.conf"
    assert conf["SlurmdSpoolDir"] == "/st/slurm/spool/%n"
    assert conf["SlurmdPidFile"] == "/st/slurm/slurmd-%n.pid"
    assert conf["TmpFS"] == "/st/slurm/tmp/%n"
    assert conf["GresTypes"] == "gpu"
    assert conf["SlurmctldHost"] == "vm(127.0.0.1)"
    assert conf["AccountingStorageType"] == "accounting_storage/none"
    assert "AccountingStorageTRES" not in conf  # slurmctld exits with it but without slurmdbd
    assert conf["MinJobAge"] == "300"
    assert conf["MaxArraySize"] == "1001"
    assert conf["MaxJobCount"] == "10000"


def test_nodes_have_distinct_ports_and_fake_gpus() -> None:
    text = C.slurm_conf(LAYOUT, C.Knobs(nodes=3, cpus=8, memory=4000, gpus=2), "vm")
    lines = node_lines(text)
    assert len(lines) == 3
    ports = set()
    for i, line in enumerate(lines, 1):
        fields = dict(f.split("=", 1) for f in line.split())
        assert fields["NodeName"] == f"n{i}"
        assert fields["NodeHostname"] == f"n{i}"
        assert fields["NodeAddr"] == "127.0.0.1"
        assert fields["CPUs"] == "8"
        assert fields["RealMemory"] == "4000"
        assert fields["Gres"] == "gpu:2"
        ports.add(fields["Port"])
    assert len(ports) == 3
    assert "PartitionName=debug Nodes=n1,n2,n3 Default=YES" in text


def test_no_gpus_means_no_gres_on_nodes() -> None:
    text = C.slurm_conf(LAYOUT, C.Knobs(gpus=0), "vm")
    assert all("Gres=" not in line for line in node_lines(text))
    gres = C.gres_conf(LAYOUT, C.Knobs(gpus=0))
    assert "AutoDetect=off" in gres
    assert "NodeName" not in gres


def test_gres_conf_names_character_device_files_per_node() -> None:
    gres = C.gres_conf(LAYOUT, C.Knobs(nodes=2, gpus=2))
    assert "NodeName=n1 Name=gpu File=/st/dev/n1/nvidia[0-1]" in gres
    assert "NodeName=n2 Name=gpu File=/st/dev/n2/nvidia[0-1]" in gres
    one = C.gres_conf(LAYOUT, C.Knobs(nodes=1, gpus=1))
    assert "NodeName=n1 Name=gpu File=/st/dev/n1/nvidia0" in one
    assert C.gpu_files(LAYOUT, "n2", 2) == [Path("/st/dev/n2/nvidia0"), Path("/st/dev/n2/nvidia1")]


def test_accounting_adds_slurmdbd_settings() -> None:
    conf = conf_map(C.slurm_conf(LAYOUT, C.Knobs(accounting=True), "vm"))
    assert conf["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert conf["AccountingStoragePass"] == "/st/munge/munge.socket"
    assert conf["AccountingStoragePort"] == str(C.ports().dbd)
    assert conf["AccountingStorageTRES"] == "gres/gpu"
    assert conf["JobAcctGatherType"] == "jobacct_gather/linux"


def test_mem_limit_makes_memory_consumable_and_kills_over_memory() -> None:
    conf = conf_map(C.slurm_conf(LAYOUT, C.Knobs(mem_limit=True), "vm"))
    assert conf["SelectTypeParameters"] == "CR_Core_Memory"
    assert conf["JobAcctGatherType"] == "jobacct_gather/linux"
    assert conf["JobAcctGatherFrequency"] == "1"
    assert conf["JobAcctGatherParams"] == "OverMemoryKill"
    assert int(conf["DefMemPerCPU"]) > 0  # else one job takes a whole node's memory


def test_slurmdbd_conf_uses_private_munge_and_loopback_db() -> None:
    text = C.slurmdbd_conf(LAYOUT, "slurm", "pw")
    assert "AuthInfo=socket=/st/munge/munge.socket" in text
    assert f"StoragePort={C.ports().mariadb}" in text
    assert "StorageHost=127.0.0.1" in text
    assert f"DbdPort={C.ports().dbd}" in text


def test_knobs_validate_and_reject_unknown() -> None:
    assert C.Knobs().replace(nodes=3).nodes == 3
    with pytest.raises(TypeError, match="valid: slurm, nodes"):
        C.Knobs().replace(node=3)
    with pytest.raises(ValueError):
        C.Knobs().replace(nodes=0)
    with pytest.raises(ValueError):
        C.Knobs().replace(gpus=-1)
    assert C.Knobs.from_dict({"nodes": 3, "bogus": 1}).nodes == 3


def test_knobs_from_env() -> None:
    env = {
        "HPCBRIDGE_TESTBED_NODES": "3",
        "HPCBRIDGE_TESTBED_ACCOUNTING": "on",
        "HPCBRIDGE_TESTBED_MIN_JOB_AGE": "5",
        "HPCBRIDGE_TESTBED_MEM_LIMIT": "",
        "UNRELATED": "x",
    }
    assert C.knobs_from_env(env) == {"nodes": 3, "accounting": True, "min_job_age": 5}
    with pytest.raises(ValueError):
        C.knobs_from_env({"HPCBRIDGE_TESTBED_ACCOUNTING": "maybe"})


def test_hosts_block_is_idempotent_and_keeps_other_lines() -> None:
    original = "127.0.0.1 localhost\n127.0.0.1 vm\n"
    block = C.hosts_block(C.Knobs(nodes=2))
    once = C.with_hosts_block(original, block)
    assert once.startswith(original)
    assert "127.0.0.1 n1 n2 n3" in once
    assert C.with_hosts_block(once, block) == once
    assert once.count(C.HOSTS_BEGIN) == 1


def test_env_puts_the_apptainer_bin_dir_first_and_drops_root_paths() -> None:
    env = C.env_vars(LAYOUT, Path("/st/bin"), "/home/u", "u", "/root/.pyenv/shims:/usr/bin:/bin")
    assert env["PATH"] == "/st/bin:/usr/bin:/bin"
    assert env["SLURM_CONF"] == "/st/etc/slurm.conf"
    assert env["HOME"] == "/home/u"
    sh = C.env_sh(env)
    assert "export SLURM_CONF=/st/etc/slurm.conf" in sh
    assert 'export PATH=/st/bin:"$PATH"' in sh


def test_state_and_cache_dirs_from_environment() -> None:
    assert C.state_dir({}) == C.DEFAULT_STATE
    assert C.state_dir({"HPCBRIDGE_TESTBED_DIR": "/x"}) == Path("/x")
    assert C.cache_dir({"HPCBRIDGE_TESTBED_CACHE": "/c"}) == Path("/c")


def test_only_min_job_age_avoids_a_restart() -> None:
    base = C.Knobs()
    assert C.reconfigure_only(base, base.replace(min_job_age=2))
    assert not C.reconfigure_only(base, base.replace(min_job_age=2, max_array_size=11))
    assert not C.reconfigure_only(base, base)  # nothing changed: nothing to do
    assert not C.reconfigure_only(base, base.replace(min_job_age=2, nodes=3))
    assert not C.reconfigure_only(base, base.replace(accounting=True))
    assert not C.reconfigure_only(base, base.replace(max_job_count=20000))


def test_up_knobs_explicit_on_defaults_else_keep_the_running_ones(tmp_path: Path) -> None:
    import json
    import os

    from tests.testbed import lifecycle
    from tests.testbed.procs import PidRegistry

    layout = C.Layout(tmp_path)
    assert lifecycle.desired_knobs(layout, {}, {}) == C.Knobs()
    env = {"HPCBRIDGE_TESTBED_NODES": "3"}
    assert lifecycle.desired_knobs(layout, {"gpus": 1}, env) == C.Knobs(nodes=3, gpus=1)
    assert lifecycle.desired_knobs(layout, {"nodes": 4}, env).nodes == 4  # flags win over env
    # a running testbed (slurmctld recorded and alive) keeps its knobs when none are given
    layout.json.write_text(json.dumps({"knobs": C.Knobs(min_job_age=7).to_dict()}))
    assert lifecycle.desired_knobs(layout, {}, {}) == C.Knobs()  # nothing running
    PidRegistry(tmp_path).record("slurmctld", os.getpid())
    assert lifecycle.desired_knobs(layout, {}, {}) == C.Knobs(min_job_age=7)
    assert lifecycle.desired_knobs(layout, {"nodes": 3}, {}) == C.Knobs(nodes=3)
