"""The site configuration schema: typed sections and the table of known keys.

:data:`FIELDS` lists every key of every fixed section with its kind (how a TOML
or text value is checked and converted); :data:`PARTITION_FIELDS` the keys of a
``[partitions.NAME]`` table.  The frozen dataclasses are what ``load_config``
returns.  Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.errors import ConfigError
from hpcbridge.images.sif.compression import SETTINGS as COMPRESSION_SETTINGS
from hpcbridge.job.spec import Bind
from hpcbridge.job.values import unknown_hint
from hpcbridge.slurm_syntax import format_mem, format_time

# Kinds (converted by hpcbridge.config.values.CONVERTERS): str, bool, int (positive),
# float (positive seconds), path, strlist, envlist (NAME or PREFIX*), pathlist (absolute,
# P or P/**), bindlist, strmap (NAME -> text), time (Slurm time limit or UNLIMITED),
# mem (Slurm size), pmi (an srun MPI plugin name), pmilist, flaglist (runtime flag
# names), srunoptlist (srun long option names), choice:a|b|c.  An "opt" prefix: the
# key may stay unset (None).
FIELDS: dict[str, dict[str, str]] = {
    "runtime": {
        "flavor": "choice:apptainer|singularity",
        "executable": "optstr",
        "version": "optstr",
        "modules": "strlist",
        "deny_flags": "flaglist",
    },
    "binds": {"default": "bindlist", "deny": "pathlist", "allow": "optpathlist"},
    "cache": {"dir": "optpath", "tmp_dir": "optpath", "shared": "bool", "group": "str"},
    "convert": {
        "backend": "choice:native|apptainer",
        "compression": "choice:" + "|".join(COMPRESSION_SETTINGS),
        "level": "int",
        "platform": "str",
        "insecure_registries": "strlist",
        "mksquashfs_mem": "optmem",
        "mksquashfs_procs": "optint",
        "rewrite": "strlist",
    },
    "env": {"allow": "envlist"},
    "polling": {"min_interval": "float", "max_backoff": "float"},
    "scheduler": {"backend": "choice:cli|pyslurm", "cluster": "optstr"},
    "state": {"dir": "optpath"},
    "templates": {"dir": "optpath"},
    "gpu": {"request": "choice:gres|gpus", "gres_name": "str"},
    "mpi": {
        "pmi": "pmi",
        "openmpi_pmi": "pmi",
        "mpich_pmi": "pmi",
        "pmi_types": "optpmilist",
        "srun_options": "srunoptlist",
        "env": "strmap",
        "openmpi_env": "strmap",
        "mpich_env": "strmap",
        "binds": "bindlist",
    },
    "limits": {"max_array_size": "optint", "max_tasks": "optint"},
}

PARTITION_FIELDS: dict[str, str] = {
    "max_time": "opttime",
    "default_time": "opttime",
    "gpu_vendor": "choice:none|nvidia|amd",
    "gres_name": "optstr",
    "gpus_per_node": "optint",
    "default_mpi": "optpmi",
    "default": "bool",
    "max_nodes": "optint",
    "cpus_per_node": "optint",
    "mem_per_node": "optmem",
}

SECTIONS = (*FIELDS, "partitions")


@dataclass(frozen=True)
class RuntimeConfig:
    flavor: str  # apptainer | singularity
    executable: str  # name on PATH or absolute path (default: the flavor's name)
    version: Optional[str]  # e.g. "1.4.5"; None: unknown (detected by whoever needs it)
    modules: tuple[str, ...]  # environment modules loaded before the runtime runs
    deny_flags: tuple[str, ...]  # runtime flags jobs may not use (long names: "fakeroot")


@dataclass(frozen=True)
class BindsConfig:
    default: tuple[Bind, ...]  # added to every job
    deny: tuple[str, ...]  # sources refused; "P" = exactly P, "P/**" = P and below
    allow: Optional[tuple[str, ...]]  # when set, sources must lie under one of these


@dataclass(frozen=True)
class CacheConfig:
    dir: Path
    tmp_dir: Optional[Path]  # None -> <dir>/tmp
    shared: bool  # a cache shared by a group: group-writable files, setgid dirs
    group: str  # "" = the user's primary group

    @property
    def effective_tmp_dir(self) -> Path:
        return self.tmp_dir if self.tmp_dir is not None else self.dir / "tmp"


@dataclass(frozen=True)
class ConvertConfig:
    backend: str  # native | apptainer
    compression: str  # auto (zstd where proven readable, else gzip) | a compressor
    level: int
    platform: str
    insecure_registries: tuple[str, ...]
    mksquashfs_mem: Optional[int] = None  # MiB for mksquashfs -mem; None: 256
    mksquashfs_procs: Optional[int] = None  # mksquashfs -processors; None: this process's CPUs
    rewrite: tuple[str, ...] = ()  # "FROM=TO" prefix rules for pyxis-style image references


@dataclass(frozen=True)
class EnvConfig:
    allow: tuple[str, ...]  # host variables carried into clean containers: NAME or PREFIX*

    def allows(self, name: str) -> bool:
        return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in self.allow)


@dataclass(frozen=True)
class PollingConfig:
    min_interval: float  # seconds between scheduler queries; the site value is a floor
    max_backoff: float  # longest wait after errors


@dataclass(frozen=True)
class SchedulerConfig:
    backend: str  # cli | pyslurm
    cluster: Optional[str]


@dataclass(frozen=True)
class StateConfig:
    dir: Path


@dataclass(frozen=True)
class TemplatesConfig:
    dir: Optional[Path]


@dataclass(frozen=True)
class GpuConfig:
    request: str  # gres: --gres=<gres_name>:N | gpus: --gpus-per-node=N
    gres_name: str


@dataclass(frozen=True)
class MpiConfig:
    pmi: str  # srun --mpi= default when neither job, partition nor flavor decides
    openmpi_pmi: str  # PMI for images whose MPI is Open MPI
    mpich_pmi: str  # PMI for images whose MPI is MPICH
    pmi_types: Optional[tuple[str, ...]]  # srun --mpi=list here; None: any srun plugin name
    srun_options: tuple[str, ...]  # srun options jobs may pass (mpi.srun_options), long names
    env: dict[str, str]  # variables set inside every MPI rank
    openmpi_env: dict[str, str]  # ... and only for images whose MPI is Open MPI
    mpich_env: dict[str, str]  # ... MPICH (UCX transports for unprivileged runtimes)
    binds: tuple[Bind, ...]  # extra binds for MPI jobs (PMIx spool, TmpFS)

    def pmi_for(self, flavor: str) -> str:
        return {"openmpi": self.openmpi_pmi, "mpich": self.mpich_pmi}.get(flavor, self.pmi)

    def env_for(self, flavor: str) -> dict[str, str]:
        """Variables for an MPI rank of an image with this MPI flavour."""
        extra = {"openmpi": self.openmpi_env, "mpich": self.mpich_env}.get(flavor, {})
        return {**self.env, **extra}


@dataclass(frozen=True)
class LimitsConfig:
    max_array_size: Optional[int]  # hint when the scheduler cannot be asked
    max_tasks: Optional[int]  # refuse arrays with more tasks than this


@dataclass(frozen=True)
class Partition:
    name: str
    max_time: Optional[int] = None  # seconds; None: no limit known
    default_time: Optional[int] = None  # seconds; used when the job gives none
    gpu_vendor: str = "none"  # none | nvidia | amd
    gres_name: Optional[str] = None  # None: gpu.gres_name
    gpus_per_node: Optional[int] = None
    default_mpi: Optional[str] = None  # an srun --mpi= value (pmix, pmi2, cray_shasta...)
    default: bool = False  # the partition used when the job names none
    max_nodes: Optional[int] = None
    cpus_per_node: Optional[int] = None
    mem_per_node: Optional[int] = None  # MiB

    @property
    def has_gpus(self) -> bool:
        return self.gpu_vendor != "none"


@dataclass(frozen=True)
class Config:
    """The resolved configuration; every value knows its source (:meth:`source_of`)."""

    runtime: RuntimeConfig
    binds: BindsConfig
    cache: CacheConfig
    convert: ConvertConfig
    env: EnvConfig
    polling: PollingConfig
    scheduler: SchedulerConfig
    state: StateConfig
    templates: TemplatesConfig
    gpu: GpuConfig
    mpi: MpiConfig
    limits: LimitsConfig
    partitions: dict[str, Partition]
    sources: dict[str, str] = field(default_factory=dict)  # dotted key -> source
    layers: tuple[str, ...] = ()  # the files read, lowest precedence first
    warnings: tuple[str, ...] = ()  # e.g. a polling interval raised to the site floor

    def source_of(self, dotted: str) -> str:
        """Where a value came from: a file path, ``HPCBRIDGE_...`` variable, ``--flag`` or
        ``default``.  Unknown keys raise ConfigError naming the valid ones."""
        if dotted in self.sources:
            return self.sources[dotted]
        raise unknown_key_error(dotted, list(self.sources), "config")

    def set_no_earlier(self, dotted: str, other: str) -> bool:
        """Whether ``dotted`` comes from the layer of ``other`` or a later one (defaults,
        then the files in order, the environment, the command line)."""
        order = ["default", *self.layers]

        def rank(label: str) -> int:
            return order.index(label) if label in order else len(order) + label.startswith("--")

        return rank(self.source_of(dotted)) >= rank(self.source_of(other))

    @property
    def default_partition(self) -> Optional[Partition]:
        for part in self.partitions.values():
            if part.default:
                return part
        return None

    def to_dict(self) -> dict[str, Any]:
        """Nested, JSON-able: paths as strings, times as Slurm text, binds as specs."""
        plain: dict[str, Any] = to_plain(self)
        return plain


def unknown_key_error(dotted: str, valid: Iterable[object], where: str) -> ConfigError:
    """``WHERE: unknown key 'a.b'`` with the closest valid key and all of them."""
    last = dotted.rsplit(".", 1)[-1]
    names = sorted({str(v) for v in valid})
    best = unknown_hint(dotted, names) if "." in dotted else unknown_hint(last, names)
    return ConfigError(f"{where}: unknown key {dotted!r}", best)


def to_plain(value: Any) -> Any:
    """JSON-able form of config values (dataclasses, paths, binds, tuples)."""
    if isinstance(value, Config):
        return {
            f.name: to_plain(getattr(value, f.name))
            for f in fields(value)
            if f.name not in ("sources", "layers", "warnings")
        }
    if isinstance(value, Partition):
        d = {f.name: getattr(value, f.name) for f in fields(value) if f.name != "name"}
        for key in ("max_time", "default_time"):
            d[key] = None if d[key] is None else format_time(d[key])
        d["mem_per_node"] = None if d["mem_per_node"] is None else format_mem(d["mem_per_node"])
        return d
    if isinstance(value, Bind):
        return f"{value.src}:{value.dst}:{value.mode}"
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
