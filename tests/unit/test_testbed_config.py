"""Pure parts of the testbed: knobs and the slurm.conf / gres.conf / slurmdbd.conf text."""

from __future__ import annotations

import os
import re
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


# ---------------------------------------------------------------- the 26.05 cluster

SID = C.default_knobs("26.05")


def test_2605_defaults_turn_cgroups_and_rate_limiting_on() -> None:
    assert (SID.slurm, SID.cgroups, SID.rate_limit) == ("26.05", True, True)
    assert (SID.rl_bucket_size, SID.rl_refill_rate, SID.rl_refill_period) == (30, 2, 1)
    assert C.default_knobs() == C.Knobs()
    assert C.Knobs.from_dict({"nodes": 3}) == C.Knobs(nodes=3)  # a 22.05 testbed.json
    assert C.Knobs.from_dict(SID.to_dict()) == SID
    for knob in ("cgroups", "rate_limit"):
        with pytest.raises(ValueError, match=re.escape(f"{knob}=on needs the 26.05 cluster")):
            C.Knobs().replace(**{knob: True})
    with pytest.raises(ValueError, match=re.escape("slurm='24.11': use one of 22.05, 26.05")):
        C.Knobs().replace(slurm="24.11")
    with pytest.raises(ValueError, match="rl_bucket_size=0: must be positive"):
        SID.replace(rl_bucket_size=0)


def test_2605_conf_has_its_own_ports_cluster_and_job_ids() -> None:
    conf = conf_map(C.slurm_conf(LAYOUT, SID.replace(accounting=True), "vm"))
    base = C.ports("22.05")
    assert conf["SlurmctldPort"] == str(base.ctld + 1000)
    assert conf["AccountingStoragePort"] == str(base.dbd + 1000)
    assert conf["ClusterName"] == "hpcbtb2605"
    assert conf["FirstJobId"] == "2600001"
    ports = {
        f.split("=")[1]
        for line in node_lines(C.slurm_conf(LAYOUT, SID, "vm"))
        for f in line.split()
        if f.startswith("Port=")
    }
    assert ports == {str(base.slurmd("n1") + 1000), str(base.slurmd("n2") + 1000)}
    assert "FirstJobId" not in conf_map(C.slurm_conf(LAYOUT, C.Knobs(), "vm"))
    assert C.slurmdbd_conf(LAYOUT, "u", "p", "26.05").count(f"={base.mariadb + 1000}\n") == 1


def test_2605_conf_uses_cgroups_and_rate_limiting() -> None:
    conf = conf_map(C.slurm_conf(LAYOUT, SID.replace(mem_limit=True), "vm"))
    assert conf["ProctrackType"] == "proctrack/cgroup"
    assert conf["TaskPlugin"] == "task/cgroup"
    assert conf["JobAcctGatherType"] == "jobacct_gather/cgroup"
    assert conf["SelectTypeParameters"] == "CR_Core_Memory"
    assert "JobAcctGatherParams" not in conf  # the cgroup limit kills, not OverMemoryKill
    assert "SwitchType" not in conf  # 26.05 has no switch/none plugin
    assert conf["SlurmctldParameters"] == (
        "rl_enable,rl_bucket_size=30,rl_refill_rate=2,rl_refill_period=1"
    )
    small = SID.replace(rl_bucket_size=5, rl_refill_rate=1, rl_refill_period=2)
    assert conf_map(C.slurm_conf(LAYOUT, small, "vm"))["SlurmctldParameters"] == (
        "rl_enable,rl_bucket_size=5,rl_refill_rate=1,rl_refill_period=2"
    )
    plain = conf_map(C.slurm_conf(LAYOUT, SID.replace(cgroups=False, rate_limit=False), "vm"))
    assert (plain["ProctrackType"], plain["TaskPlugin"]) == ("proctrack/linuxproc", "task/affinity")
    assert "SlurmctldParameters" not in plain
    oom = conf_map(C.slurm_conf(LAYOUT, SID.replace(cgroups=False, mem_limit=True), "vm"))
    assert oom["JobAcctGatherParams"] == "OverMemoryKill"


def test_cgroup_conf_is_v1_without_systemd() -> None:
    text = C.cgroup_conf(SID.replace(mem_limit=True))
    lines = set(text.splitlines())
    assert {"CgroupPlugin=cgroup/v1", "IgnoreSystemd=yes", "ConstrainRAMSpace=yes"} <= lines
    assert "ConstrainCores=no" in lines  # 16 advertised CPUs on a 2-core machine
    assert "ConstrainRAMSpace=no" in C.cgroup_conf(SID)
    assert C.cgroup_conf(C.Knobs()) == "CgroupPlugin=autodetect\n"


def test_the_release_picks_state_dir_and_env_names_it() -> None:
    assert C.state_dir({}, "26.05") == Path("/var/tmp/hpcbridge-testbed-2605")
    assert C.state_dir({"HPCBRIDGE_TESTBED_SLURM": "26.05"}) == C.DEFAULT_STATES["26.05"]
    env = {"HPCBRIDGE_TESTBED_SLURM": "26.05", "HPCBRIDGE_TESTBED_DIR": "/x"}
    assert C.state_dir(env) == Path("/x")  # $HPCBRIDGE_TESTBED_DIR is the selected release's
    assert C.state_dir(env, "22.05") == C.DEFAULT_STATE
    assert C.state_dir({"HPCBRIDGE_TESTBED_DIR": "/x"}, "26.05") == C.DEFAULT_STATES["26.05"]
    assert C.release_from({"slurm": "22.05"}, env) == "22.05"  # a flag wins
    assert C.knobs_from_env({"HPCBRIDGE_TESTBED_SLURM": "26.05"}) == {"slurm": "26.05"}
    with pytest.raises(ValueError, match=re.escape("Slurm release '25.05'")):
        C.knobs_from_env({"HPCBRIDGE_TESTBED_SLURM": "25.05"})
    envd = C.env_vars(LAYOUT, Path("/st/sid/bin"), "/home/u", "u", "/usr/bin", "26.05")
    assert envd["HPCBRIDGE_TESTBED_SLURM"] == "26.05"
    assert "export HPCBRIDGE_TESTBED_SLURM=26.05" in C.env_sh(envd)


def test_known_roots_are_both_defaults_or_the_explicit_dir() -> None:
    from tests.testbed import health

    assert health.known_roots({}) == [C.DEFAULT_STATE, C.DEFAULT_STATES["26.05"]]
    assert health.known_roots({"HPCBRIDGE_TESTBED_DIR": "/x"}) == [Path("/x")]


def test_slurm_alone_names_the_release_and_resets_nothing(tmp_path: Path) -> None:
    import json
    import os

    from tests.testbed import lifecycle
    from tests.testbed.procs import PidRegistry

    layout = C.Layout(tmp_path)
    assert lifecycle.desired_knobs(layout, {"slurm": "26.05"}, {}) == SID
    both = {"HPCBRIDGE_TESTBED_RATE_LIMIT": "on", "HPCBRIDGE_TESTBED_RL_BUCKET_SIZE": "5"}
    assert lifecycle.desired_knobs(layout, {"slurm": "22.05"}, both) == C.Knobs(rl_bucket_size=5)
    assert lifecycle.desired_knobs(layout, {"slurm": "26.05"}, both) == SID.replace(
        rl_bucket_size=5
    )
    env = {"HPCBRIDGE_TESTBED_SLURM": "26.05"}
    assert lifecycle.desired_knobs(layout, {"nodes": 3}, env) == SID.replace(nodes=3)
    layout.json.write_text(json.dumps({"knobs": SID.replace(accounting=True).to_dict()}))
    PidRegistry(tmp_path).record("slurmctld", os.getpid())
    assert lifecycle.desired_knobs(layout, {}, env).accounting  # the running knobs stay
    assert lifecycle.desired_knobs(layout, {"slurm": "26.05"}, {}).accounting


def test_sandbox_pivots_root_and_joins_the_testbed_cgroups() -> None:
    from tests.testbed import sid

    text = sid.sandbox_script(Path("/r"), [Path("/work/main")], "hpcbtb_st")
    lines = text.splitlines()
    assert "R=/r" in lines
    assert 'for d in /tmp /home /var/tmp /work/main; do mount --rbind "$d" "$R$d"; done' in lines
    assert lines[-5:] == [
        'cd "$R"',
        "pivot_root . .oldroot",
        "cd /",
        "umount -l /.oldroot",
        'exec unshare --cgroup "$@"',
    ]
    assert 'mount --bind "/sys/fs/cgroup/$c/hpcbtb_st" "$R/sys/fs/cgroup/$c"' in text
    assert "for c in cpuset memory freezer cpuacct; do" in lines
    plain = sid.sandbox_script(Path("/r"), [], None)
    assert "cgroup" not in plain and plain.splitlines()[-1] == 'exec "$@"'
    assert "chroot" not in text  # a chroot forbids user namespaces (rootless Apptainer)
    assert sid.cgroup_name(C.Layout(Path("/var/tmp/x-2605"))) == "hpcbtb_var_tmp_x-2605"
    argv = sid.daemon_argv(C.Layout(Path("/st")), "n1", ["/usr/sbin/slurmd", "-D"])
    assert argv[:7] == [
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "/st/sid/sandbox.sh",
    ]
    assert argv[7:] == ["n1", "/usr/sbin/slurmd", "-D"]


def test_client_wrapper_runs_the_sid_binary_directly_inside_the_rootfs() -> None:
    from tests.testbed import sid

    text = sid.client_wrapper(Path("/r"), [Path("/c")], "squeue")
    assert f'[ ! -e {sid.MARKER} ] || exec /usr/bin/squeue "$@"' in text.splitlines()
    assert "exec bwrap --bind /r / " in text
    assert "--bind /c /c" in text
    assert text.rstrip().endswith('--chdir "$here" -- /usr/bin/squeue "$@"')
    # a working directory the sandbox does not show: the command runs in /
    assert 'case "$PWD" in /tmp|/tmp/*|/home|/home/*|/var/tmp|/var/tmp/*|/c|/c/*) here=$PWD' in text


def test_sandbox_shows_the_host_python_and_the_shadow_file(tmp_path: Path) -> None:
    from tests.testbed import sid

    exe, stdlib = sid.host_python()
    assert exe.is_file() and (stdlib / "os.py").is_file()
    sid._python_placeholders(tmp_path, exe, stdlib)
    assert (tmp_path / exe.relative_to("/")).is_file()  # a mount point for the bind
    assert (tmp_path / stdlib.relative_to("/")).is_dir()
    if exe.name != "python3":
        assert os.readlink(tmp_path / exe.parent.relative_to("/") / "python3") == exe.name
    text = sid.sandbox_script(Path("/r"), [exe, stdlib], None)
    assert f'for d in /tmp /home /var/tmp {exe} {stdlib}; do mount --rbind "$d" "$R$d"; done' in (
        text.splitlines()
    )
    assert "for f in /etc/passwd /etc/group /etc/shadow /etc/hosts; do" in text


def test_a_rootfs_in_use_is_never_rebuilt(tmp_path: Path) -> None:
    from tests.testbed import apptainer as A

    spec = A.RootfsSpec("r", ("no-such-package",), ("bin/sh",))
    (tmp_path / "r" / "bin").mkdir(parents=True)
    (tmp_path / "r" / "bin" / "sh").write_text("")
    with pytest.raises(RuntimeError, match=r"must be rebuilt .* bring the testbed down first"):
        A.ensure_rootfs(tmp_path, spec, in_use=True)
    assert (tmp_path / "r" / "bin" / "sh").exists()  # left as it was
