"""Pure parts of the testbed: paths, ports and the Slurm/munge/slurmdbd config text.

Nothing here touches the machine; tests/unit/test_testbed_config.py checks it.  The
knobs live in knobs.py (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.testbed.knobs import DEFAULT_RELEASE as DEFAULT_RELEASE
from tests.testbed.knobs import KNOB_NAMES as KNOB_NAMES
from tests.testbed.knobs import RELEASES as RELEASES
from tests.testbed.knobs import Knobs as Knobs
from tests.testbed.knobs import default_knobs as default_knobs
from tests.testbed.knobs import knobs_from_env as knobs_from_env
from tests.testbed.knobs import parse_bool as parse_bool
from tests.testbed.knobs import reconfigure_only as reconfigure_only
from tests.testbed.knobs import release_from as release_from

DEFAULT_STATE = Path("/var/tmp/hpcbridge-testbed")
DEFAULT_STATES = {"22.05": DEFAULT_STATE, "26.05": Path("/var/tmp/hpcbridge-testbed-2605")}
DEFAULT_CACHE = Path("/var/cache/hpcbridge-testbed")
CLUSTER = "hpcbtb"
CLUSTERS = {"22.05": CLUSTER, "26.05": "hpcbtb2605"}
ACCOUNT = "hpcbacct"
# Job ids of the 26.05 cluster start here, so they never collide with the 22.05 cluster's
# in anything keyed by job id (hpcbridge's records and poll cache of the one test user).
FIRST_JOB_ID = {"22.05": 1, "26.05": 2_600_001}

# Ports on 127.0.0.1.  Slurm's defaults (6817-6819) are left free for a real install.
# The 26.05 cluster's ports are 1000 above the 22.05 ones; HPCBRIDGE_TESTBED_PORT_OFFSET
# shifts them all, so a second testbed (another state dir, e.g. bench/testbed_up.py uses
# 100, the lifecycle test 400) can run next to the main ones.
PORT_OFFSET = int(os.environ.get("HPCBRIDGE_TESTBED_PORT_OFFSET") or 0)
RELEASE_PORT_SHIFT = {"22.05": 0, "26.05": 1000}
REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster."""

    ctld: int
    dbd: int
    slurmd_base: int  # n1 -> base + 1, n2 -> base + 2, ...
    mariadb: int

    def slurmd(self, node: str) -> int:
        return self.slurmd_base + int(node[1:])


def ports(release: str = DEFAULT_RELEASE) -> Ports:
    shift = PORT_OFFSET + RELEASE_PORT_SHIFT[release]
    return Ports(17817 + shift, 17819 + shift, 17820 + shift, 17306 + shift)


def state_dir(environ: Optional[Mapping[str, str]] = None, release: Optional[str] = None) -> Path:
    """The state dir of ``release`` (default: the one $HPCBRIDGE_TESTBED_SLURM selects).

    $HPCBRIDGE_TESTBED_DIR names the state dir of the release $HPCBRIDGE_TESTBED_SLURM
    selects (22.05 when unset); the other release keeps its default dir.
    """
    env = os.environ if environ is None else environ
    selected = release_from({}, env)
    rel = release or selected
    explicit = env.get("HPCBRIDGE_TESTBED_DIR")
    if explicit and rel == selected:
        return Path(explicit)
    return DEFAULT_STATES[rel]


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("HPCBRIDGE_TESTBED_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class Layout:
    """Where everything of one testbed lives (all under the state dir)."""

    root: Path
    etc: Path = field(init=False, repr=False)
    log: Path = field(init=False, repr=False)
    slurm_conf: Path = field(init=False, repr=False)
    gres_conf: Path = field(init=False, repr=False)
    plugstack_conf: Path = field(init=False, repr=False)
    cgroup_conf: Path = field(init=False, repr=False)
    slurmdbd_conf: Path = field(init=False, repr=False)
    munge_dir: Path = field(init=False, repr=False)
    munge_key: Path = field(init=False, repr=False)
    munge_socket: Path = field(init=False, repr=False)
    slurm_dir: Path = field(init=False, repr=False)
    ctld_state: Path = field(init=False, repr=False)  # StateSaveLocation
    spool: Path = field(init=False, repr=False)  # SlurmdSpoolDir is <spool>/<node>
    tmpfs: Path = field(init=False, repr=False)  # TmpFS is <tmpfs>/<node>
    dev: Path = field(init=False, repr=False)  # fake GPUs: <dev>/<node>/nvidiaN
    db_dir: Path = field(init=False, repr=False)  # MariaDB (accounting)
    json: Path = field(init=False, repr=False)
    env_sh: Path = field(init=False, repr=False)
    lock: Path = field(init=False, repr=False)  # flock of up/down
    knobs_lock: Path = field(init=False, repr=False)  # flock of reconfigure blocks
    # 26.05 only (sid.py): wrappers of the sid clients and Apptainer, the daemons' sandbox
    sid: Path = field(init=False, repr=False)
    sid_bin: Path = field(init=False, repr=False)
    sid_slurm_bin: Path = field(init=False, repr=False)  # the client wrappers alone
    sandbox: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, rel in _LAYOUT.items():
            object.__setattr__(self, name, self.root / rel)


_LAYOUT = {
    "etc": "etc",
    "log": "log",
    "slurm_conf": "etc/slurm.conf",
    "gres_conf": "etc/gres.conf",
    "plugstack_conf": "etc/plugstack.conf",
    "cgroup_conf": "etc/cgroup.conf",
    "slurmdbd_conf": "etc/slurmdbd.conf",
    "munge_dir": "munge",
    "munge_key": "munge/munge.key",
    "munge_socket": "munge/munge.socket",
    "slurm_dir": "slurm",
    "ctld_state": "slurm/ctld",
    "spool": "slurm/spool",
    "tmpfs": "slurm/tmp",
    "dev": "dev",
    "db_dir": "db",
    "json": "testbed.json",
    "env_sh": "env.sh",
    "lock": ".lock",
    "knobs_lock": ".knobs.lock",
    "sid": "sid",
    "sid_bin": "sid/bin",
    "sid_slurm_bin": "sid/slurm-bin",
    "sandbox": "sid/sandbox.sh",
}


def node_names(knobs: Knobs) -> list[str]:
    return [f"n{i}" for i in range(1, knobs.nodes + 1)]


def gpu_files(layout: Layout, node: str, gpus: int) -> list[Path]:
    return [layout.dev / node / f"nvidia{i}" for i in range(gpus)]


def slurm_conf(layout: Layout, knobs: Knobs, ctld_host: str) -> str:
    """The slurm.conf text for ``knobs`` (controller on ``ctld_host``, nodes on 127.0.0.1)."""
    nodes = node_names(knobs)
    port = ports(knobs.slurm)
    lines = [
        "# Written by tests/testbed (hpcbridge); regenerated on every up/reconfigure.",
        f"ClusterName={CLUSTERS[knobs.slurm]}",
        f"SlurmctldHost={ctld_host}(127.0.0.1)",
        f"SlurmctldPort={port.ctld}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={layout.munge_socket}",
        "CredType=cred/munge",
        f"StateSaveLocation={layout.ctld_state}",
        f"SlurmdSpoolDir={layout.spool}/%n",
        f"SlurmctldPidFile={layout.slurm_dir}/slurmctld.pid",
        f"SlurmdPidFile={layout.slurm_dir}/slurmd-%n.pid",
        f"SlurmctldLogFile={layout.log}/slurmctld.log",
        f"SlurmdLogFile={layout.log}/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        f"TmpFS={layout.tmpfs}/%n",
        f"PlugStackConfig={layout.plugstack_conf}",
        *_plugin_lines(knobs),
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        f"SelectTypeParameters={'CR_Core_Memory' if knobs.mem_limit else 'CR_Core'}",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0",
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "MailProg=/bin/true",
        "LaunchParameters=use_interactive_step",
        f"MinJobAge={knobs.min_job_age}",
        f"MaxArraySize={knobs.max_array_size}",
        f"MaxJobCount={knobs.max_job_count}",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=60",
        "InactiveLimit=0",
        "KillWait=5",
        "Waittime=0",
        "GresTypes=gpu",
    ]
    if FIRST_JOB_ID[knobs.slurm] != 1:
        lines.append(f"FirstJobId={FIRST_JOB_ID[knobs.slurm]}")
    if knobs.rate_limit:
        lines.append(
            "SlurmctldParameters=rl_enable"
            f",rl_bucket_size={knobs.rl_bucket_size}"
            f",rl_refill_rate={knobs.rl_refill_rate}"
            f",rl_refill_period={knobs.rl_refill_period}"
        )
    lines += _accounting_lines(layout, knobs)
    gres = f" Gres=gpu:{knobs.gpus}" if knobs.gpus else ""
    for node in nodes:
        lines.append(
            f"NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 Port={port.slurmd(node)}"
            f" CPUs={knobs.cpus} RealMemory={knobs.memory}{gres} State=UNKNOWN"
        )
    lines.append(
        f"PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP"
    )
    return "\n".join(lines) + "\n"


def _plugin_lines(knobs: Knobs) -> list[str]:
    """Process tracking, task containment and the memory-limit mechanism."""
    if knobs.cgroups:
        # cgroup.conf (cgroup_conf below) decides what is constrained.
        lines = ["ProctrackType=proctrack/cgroup", "TaskPlugin=task/cgroup"]
    elif knobs.slurm == "22.05":
        lines = ["ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none"]
        lines.append("SwitchType=switch/none")
    else:  # 26.05 has no task/none or switch/none plugin any more
        lines = ["ProctrackType=proctrack/linuxproc", "TaskPlugin=task/affinity"]
    gather = "jobacct_gather/cgroup" if knobs.cgroups else "jobacct_gather/linux"
    if knobs.mem_limit:
        lines += [f"JobAcctGatherType={gather}", "JobAcctGatherFrequency=1"]
        if not knobs.cgroups:
            lines.append("JobAcctGatherParams=OverMemoryKill")
        lines.append("DefMemPerCPU=256")
    elif knobs.accounting:
        lines += [f"JobAcctGatherType={gather}", "JobAcctGatherFrequency=30"]
    else:
        lines += ["JobAcctGatherType=jobacct_gather/none"]
    return lines


def _accounting_lines(layout: Layout, knobs: Knobs) -> list[str]:
    if not knobs.accounting:
        return ["AccountingStorageType=accounting_storage/none"]
    return [
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={ports(knobs.slurm).dbd}",
        f"AccountingStoragePass={layout.munge_socket}",
        "AccountingStorageTRES=gres/gpu",
        "JobCompType=jobcomp/none",
    ]


def cgroup_conf(knobs: Knobs) -> str:
    """cgroup.conf: cgroup v1 (what this machine's memory controller is on) without systemd."""
    if not knobs.cgroups:
        return "CgroupPlugin=autodetect\n"
    ram = "yes" if knobs.mem_limit else "no"
    return (
        "\n".join(
            [
                "# Written by tests/testbed (hpcbridge): cgroup v1 inside the 26.05 sandbox,",
                "# which shows each controller's testbed subtree as its root (sid.py).",
                "CgroupPlugin=cgroup/v1",
                "CgroupMountpoint=/sys/fs/cgroup",
                "IgnoreSystemd=yes",
                f"ConstrainRAMSpace={ram}",
                "ConstrainSwapSpace=no",
                "ConstrainCores=no",
                "ConstrainDevices=no",
            ]
        )
        + "\n"
    )


def gres_conf(layout: Layout, knobs: Knobs) -> str:
    lines = ["# Fake GPUs: character devices made with mknod (tests/testbed)", "AutoDetect=off"]
    if knobs.gpus:
        for node in node_names(knobs):
            last = knobs.gpus - 1
            files = (
                f"{layout.dev}/{node}/nvidia[0-{last}]" if last else f"{layout.dev}/{node}/nvidia0"
            )
            lines.append(f"NodeName={node} Name=gpu File={files}")
    return "\n".join(lines) + "\n"


def slurmdbd_conf(
    layout: Layout, db_user: str, db_password: str, release: str = DEFAULT_RELEASE
) -> str:
    port = ports(release)
    return (
        "\n".join(
            [
                "# Written by tests/testbed (hpcbridge)",
                "AuthType=auth/munge",
                f"AuthInfo=socket={layout.munge_socket}",
                "DbdHost=localhost",
                "DbdAddr=127.0.0.1",
                f"DbdPort={port.dbd}",
                "SlurmUser=root",
                f"PidFile={layout.slurm_dir}/slurmdbd.pid",
                f"LogFile={layout.log}/slurmdbd.log",
                "DebugLevel=info",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={port.mariadb}",
                f"StorageUser={db_user}",
                f"StoragePass={db_password}",
                "StorageLoc=slurm_acct_db",
            ]
        )
        + "\n"
    )


def hosts_block(knobs: Knobs, max_nodes: int = 16) -> str:
    """The marked /etc/hosts block making n1..nN resolve to 127.0.0.1."""
    names = " ".join(f"n{i}" for i in range(1, max(max_nodes, knobs.nodes) + 1))
    return f"{HOSTS_BEGIN}\n127.0.0.1 {names}\n{HOSTS_END}\n"


HOSTS_BEGIN = "# BEGIN hpcbridge-testbed"
HOSTS_END = "# END hpcbridge-testbed"


def with_hosts_block(hosts_text: str, block: str) -> str:
    """``hosts_text`` with the testbed block replaced or appended (idempotent)."""
    out: list[str] = []
    skipping = False
    for line in hosts_text.splitlines():
        if line.strip() == HOSTS_BEGIN:
            skipping = True
            continue
        if line.strip() == HOSTS_END:
            skipping = False
            continue
        if not skipping:
            out.append(line)
    text = "\n".join(out).rstrip("\n")
    return (text + "\n" if text else "") + block


def env_vars(
    layout: Layout,
    bin_dir: Optional[Path],
    user_home: str,
    user_name: str,
    path: str,
    release: str = DEFAULT_RELEASE,
) -> dict[str, str]:
    """The environment a test or a person uses to talk to the testbed cluster."""
    parts = [str(bin_dir)] if bin_dir else []
    parts += [p for p in path.split(":") if p and p not in parts and not p.startswith("/root")]
    env = {
        "SLURM_CONF": str(layout.slurm_conf),
        "PATH": ":".join(parts),
        "HOME": user_home,
        "USER": user_name,
        "LOGNAME": user_name,
        "HPCBRIDGE_TESTBED_DIR": str(layout.root),
        "HPCBRIDGE_TESTBED_SLURM": release,  # HPCBRIDGE_TESTBED_DIR holds this release
    }
    if bin_dir:
        env["HPCBRIDGE_TESTBED_BIN"] = str(bin_dir)
    return env


def env_sh(env: Mapping[str, str]) -> str:
    import shlex

    lines = ["# source me: the hpcbridge testbed's Slurm and Apptainer for this shell"]
    for key in ("SLURM_CONF", "HPCBRIDGE_TESTBED_DIR", "HPCBRIDGE_TESTBED_SLURM"):
        if key in env:
            lines.append(f"export {key}={shlex.quote(env[key])}")
    bin_dir = env.get("HPCBRIDGE_TESTBED_BIN")
    if bin_dir:
        lines.append(f'export PATH={shlex.quote(bin_dir)}:"$PATH"')
    return "\n".join(lines) + "\n"
