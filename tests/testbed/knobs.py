"""Knobs of the testbed cluster: what a test or a person may change (flags / env vars of ``up``).

Pure: nothing here touches the machine; tests/unit/test_testbed_config.py checks it.
``slurm`` picks the release (22.05 from the host's Debian 12 packages, 26.05 from a
Debian sid root filesystem); it also picks the default state dir and ports, so both
releases can run side by side (see config.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RELEASES = ("22.05", "26.05")
DEFAULT_RELEASE = "22.05"
# Knobs that only the 26.05 cluster has (22.05 has no RPC rate limiting; its daemons
# run on the host, without the cgroup-v1 view the 26.05 sandbox gives them).
SID_ONLY = ("rate_limit", "cgroups")


@dataclass(frozen=True)
class Knobs:
    """The cluster's configuration; ``default_knobs(release)`` gives each release's defaults."""

    slurm: str = DEFAULT_RELEASE  # release: 22.05 (host packages) or 26.05 (Debian sid)
    nodes: int = 2
    cpus: int = 16  # advertised per node (SlurmdParameters=config_overrides)
    memory: int = 16000  # MB per node (RealMemory)
    gpus: int = 2  # fake gres/gpu per node
    min_job_age: int = 300
    max_array_size: int = 1001
    max_job_count: int = 10000
    accounting: bool = False  # slurmdbd + private MariaDB
    mem_limit: bool = False  # memory is consumable and over-memory tasks are killed
    cgroups: bool = False  # 26.05: task/cgroup + proctrack/cgroup (cgroup v1 here)
    rate_limit: bool = False  # 26.05: SlurmctldParameters=rl_enable (per-user token bucket)
    rl_bucket_size: int = 30
    rl_refill_rate: int = 2  # tokens added every rl_refill_period seconds
    rl_refill_period: int = 1

    def validate(self) -> Knobs:
        if self.slurm not in RELEASES:
            raise ValueError(f"slurm={self.slurm!r}: use one of {', '.join(RELEASES)}")
        if not 1 <= self.nodes <= 16:
            raise ValueError(f"nodes={self.nodes}: use 1..16")
        positive = ("cpus", "memory", "min_job_age", "max_array_size", "max_job_count")
        for name in (*positive, "rl_bucket_size", "rl_refill_rate", "rl_refill_period"):
            if int(getattr(self, name)) < (0 if name == "min_job_age" else 1):
                raise ValueError(f"{name}={getattr(self, name)}: must be positive")
        if not 0 <= self.gpus <= 8:
            raise ValueError(f"gpus={self.gpus}: use 0..8")
        if self.slurm == "22.05":
            for name in SID_ONLY:
                if getattr(self, name):
                    raise ValueError(f"{name}=on needs the 26.05 cluster (--slurm 26.05)")
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
        known = {k: v for k, v in data.items() if k in KNOB_NAMES}
        return default_knobs(str(known.get("slurm") or DEFAULT_RELEASE)).replace(**known)


KNOB_NAMES = tuple(f.name for f in dataclasses.fields(Knobs))


def default_knobs(release: str = DEFAULT_RELEASE) -> Knobs:
    """The defaults of ``release``: 26.05 runs with cgroups and rate limiting on."""
    modern = release != "22.05"
    return Knobs(slurm=release, cgroups=modern, rate_limit=modern).validate()


# Knobs slurmctld takes from `scontrol reconfigure`; every other change restarts the daemons.
# (MaxArraySize is not one: after a reconfigure `scontrol show config` reports the new
# value but sbatch is still checked against the old one, verified on 22.05.8.  On 26.05 a
# reconfigure re-executes slurmctld in place: with -D the PID and start time stay.)
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


def parse_release(text: str) -> str:
    value = text.strip()
    if value not in RELEASES:
        raise ValueError(f"Slurm release {text!r}: use one of {', '.join(RELEASES)}")
    return value


def knobs_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Knobs given as ``HPCBRIDGE_TESTBED_<KNOB>`` variables (only those set)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Knobs):
        raw = environ.get(f"HPCBRIDGE_TESTBED_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        if f.type in ("bool", bool):
            out[f.name] = parse_bool(raw)
        elif f.type in ("str", str):
            out[f.name] = parse_release(raw)
        else:
            out[f.name] = int(raw)
    return out


def release_from(overrides: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The release asked for: ``overrides['slurm']``, else $HPCBRIDGE_TESTBED_SLURM, else 22.05."""
    if overrides.get("slurm"):
        return parse_release(str(overrides["slurm"]))
    return str(knobs_from_env(environ).get("slurm") or DEFAULT_RELEASE)
