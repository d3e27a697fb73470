"""Pure parts of the testbed: knobs, paths and the Slurm/munge/slurmdbd config text.

Nothing here touches the machine; tests/unit/test_testbed_config.py checks it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

DEFAULT_STATE = Path("/var/tmp/hpcbridge-testbed")
DEFAULT_CACHE = Path("/var/cache/hpcbridge-testbed")
CLUSTER = "hpcbtb"
ACCOUNT = "hpcbacct"

# Ports on 127.0.0.1.  Slurm's defaults (6817-6819) are left free for a real install.
# HPCBRIDGE_TESTBED_PORT_OFFSET shifts them all, so a second testbed (another state
# dir, e.g. bench/testbed_up.py) can run next to the main one.
PORT_OFFSET = int(os.environ.get("HPCBRIDGE_TESTBED_PORT_OFFSET") or 0)
CTLD_PORT = 17817 + PORT_OFFSET
DBD_PORT = 17819 + PORT_OFFSET
SLURMD_PORT_BASE = 17820 + PORT_OFFSET  # n1 -> 17821, n2 -> 17822, ...
MARIADB_PORT = 17306 + PORT_OFFSET
REGISTRY = "127.0.0.1:5000"


def state_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("HPCBRIDGE_TESTBED_DIR") or DEFAULT_STATE)


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("HPCBRIDGE_TESTBED_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class Knobs:
    """What a test or a person may change about the cluster (CLI flags / env vars of ``up``)."""

    nodes: int = 2
    cpus: int = 16  # advertised per node (SlurmdParameters=config_overrides)
    memory: int = 16000  # MB per node (RealMemory)
    gpus: int = 2  # fake gres/gpu per node
    min_job_age: int = 300
    max_array_size: int = 1001
    max_job_count: int = 10000
    accounting: bool = False  # slurmdbd + private MariaDB
    mem_limit: bool = False  # memory is consumable and over-memory tasks are killed

    def validate(self) -> Knobs:
        if not 1 <= self.nodes <= 16:
            raise ValueError(f"nodes={self.nodes}: use 1..16")
        for name in ("cpus", "memory", "min_job_age", "max_array_size", "max_job_count"):
            if int(getattr(self, name)) < (0 if name == "min_job_age" else 1):
                raise ValueError(f"{name}={getattr(self, name)}: must be positive")
        if not 0 <= self.gpus <= 8:
            raise ValueError(f"gpus={self.gpus}: use 0..8")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Knobs:
        unknown = set(changes) - set(KNOB_NAMES)
        if unknown:
            raise TypeError(f"unknown knob(s) {sorted(unknown)}; valid: {', '.join(KNOB_NAMES)}")
        return dataclasses.replace(self, **changes).validate()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Knobs:
        return cls().replace(**{k: v for k, v in data.items() if k in KNOB_NAMES})


KNOB_NAMES = tuple(f.name for f in dataclasses.fields(Knobs))

# Knobs slurmctld takes from `scontrol reconfigure`; every other change restarts the daemons.
# (MaxArraySize is not one: after a reconfigure `scontrol show config` reports the new
# value but sbatch is still checked against the old one, verified on 22.05.8.)
RECONFIGURABLE = ("min_job_age",)


def reconfigure_only(old: Knobs, new: Knobs) -> bool:
    """True when ``old`` -> ``new`` changes only knobs ``scontrol reconfigure`` applies."""
    diff = {k for k in KNOB_NAMES if getattr(old, k) != getattr(new, k)}
    return bool(diff) and diff <= set(RECONFIGURABLE)


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use on/off)")


def knobs_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Knobs given as ``HPCBRIDGE_TESTBED_<KNOB>`` variables (only those set)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Knobs):
        raw = environ.get(f"HPCBRIDGE_TESTBED_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        out[f.name] = parse_bool(raw) if f.type in ("bool", bool) else int(raw)
    return out


@dataclass(frozen=True)
class Layout:
    """Where everything of one testbed lives (all under the state dir)."""

    root: Path
    etc: Path = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etc", self.root / "etc")
        object.__setattr__(self, "log", self.root / "log")

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def gres_conf(self) -> Path:
        return self.etc / "gres.conf"

    @property
    def plugstack_conf(self) -> Path:
        return self.etc / "plugstack.conf"

    @property
    def cgroup_conf(self) -> Path:
        return self.etc / "cgroup.conf"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def munge_key(self) -> Path:
        return self.munge_dir / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def slurm_dir(self) -> Path:
        return self.root / "slurm"

    @property
    def ctld_state(self) -> Path:
        return self.slurm_dir / "ctld"

    @property
    def spool(self) -> Path:
        return self.slurm_dir / "spool"

    @property
    def tmpfs(self) -> Path:
        return self.slurm_dir / "tmp"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def json(self) -> Path:
        return self.root / "testbed.json"

    @property
    def env_sh(self) -> Path:
        return self.root / "env.sh"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def knobs_lock(self) -> Path:
        return self.root / ".knobs.lock"


def node_names(knobs: Knobs) -> list[str]:
    return [f"n{i}" for i in range(1, knobs.nodes + 1)]


def slurmd_port(node: str) -> int:
    return SLURMD_PORT_BASE + int(node[1:])


def gpu_files(layout: Layout, node: str, gpus: int) -> list[Path]:
    return [layout.dev / node / f"nvidia{i}" for i in range(gpus)]


def slurm_conf(layout: Layout, knobs: Knobs, ctld_host: str) -> str:
    """The slurm.conf text for ``knobs`` (controller on ``ctld_host``, nodes on 127.0.0.1)."""
    nodes = node_names(knobs)
    lines = [
        "# Written by tests/testbed (hpcbridge); regenerated on every up/reconfigure.",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={ctld_host}(127.0.0.1)",
        f"SlurmctldPort={CTLD_PORT}",
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
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
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
    if knobs.mem_limit:
        lines += [
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=1",
            "JobAcctGatherParams=OverMemoryKill",
            "DefMemPerCPU=256",
        ]
    elif knobs.accounting:
        lines += ["JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=30"]
    else:
        lines += ["JobAcctGatherType=jobacct_gather/none"]
    if knobs.accounting:
        lines += [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={DBD_PORT}",
            f"AccountingStoragePass={layout.munge_socket}",
            "AccountingStorageTRES=gres/gpu",
            "JobCompType=jobcomp/none",
        ]
    else:
        lines += ["AccountingStorageType=accounting_storage/none"]
    gres = f" Gres=gpu:{knobs.gpus}" if knobs.gpus else ""
    for node in nodes:
        lines.append(
            f"NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 Port={slurmd_port(node)}"
            f" CPUs={knobs.cpus} RealMemory={knobs.memory}{gres} State=UNKNOWN"
        )
    lines.append(
        f"PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP"
    )
    return "\n".join(lines) + "\n"


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


def slurmdbd_conf(layout: Layout, db_user: str, db_password: str) -> str:
    return (
        "\n".join(
            [
                "# Written by tests/testbed (hpcbridge)",
                "AuthType=auth/munge",
                f"AuthInfo=socket={layout.munge_socket}",
                "DbdHost=localhost",
                "DbdAddr=127.0.0.1",
                f"DbdPort={DBD_PORT}",
                "SlurmUser=root",
                f"PidFile={layout.slurm_dir}/slurmdbd.pid",
                f"LogFile={layout.log}/slurmdbd.log",
                "DebugLevel=info",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={MARIADB_PORT}",
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
    layout: Layout, bin_dir: Optional[Path], user_home: str, user_name: str, path: str
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
    }
    if bin_dir:
        env["HPCBRIDGE_TESTBED_BIN"] = str(bin_dir)
    return env


def env_sh(env: Mapping[str, str]) -> str:
    import shlex

    lines = ["# source me: the hpcbridge testbed's Slurm and Apptainer for this shell"]
    for key in ("SLURM_CONF", "HPCBRIDGE_TESTBED_DIR"):
        lines.append(f"export {key}={shlex.quote(env[key])}")
    bin_dir = env.get("HPCBRIDGE_TESTBED_BIN")
    if bin_dir:
        lines.append(f'export PATH={shlex.quote(bin_dir)}:"$PATH"')
    return "\n".join(lines) + "\n"
