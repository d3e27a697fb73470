"""What the probe layer found out about this machine (plain values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hpcbridge.doctor.readable import ZstdFacts
from hpcbridge.scheduler.base import ClusterLimits


@dataclass(frozen=True)
class RuntimeFacts:
    executable: str  # as configured (name or path)
    flavor: str  # apptainer | singularity (configured)
    configured_version: Optional[str]
    path: Optional[str] = None  # resolved on PATH; None: not found
    version_output: str = ""  # first line of `<exe> --version`
    suid_starter: bool = False  # a setuid starter is installed (no user namespaces needed)
    error: str = ""
    # when the executable is missing: other runtimes on PATH, (path, first --version line)
    others: tuple[tuple[str, str], ...] = ()
    in_job: str = ""  # $SLURM_JOB_ID: running inside a job, i.e. on a compute node


@dataclass(frozen=True)
class KernelFacts:
    max_user_namespaces: Optional[int]  # /proc/sys/user/max_user_namespaces
    unprivileged_userns_clone: Optional[int]  # Debian/Ubuntu knob; None: not present
    apparmor_restrict_userns: Optional[int]  # Ubuntu 23.10+ knob; None: not present


@dataclass(frozen=True)
class FuseFacts:
    device: str  # normally /dev/fuse
    exists: bool
    is_char_device: bool
    mode: Optional[int]  # permission bits
    usable: bool  # readable and writable by this user
    squashfuse: Optional[str]  # squashfuse_ll or squashfuse found (PATH or runtime libexec)
    fusermount: Optional[str]


@dataclass(frozen=True)
class QuotaFacts:
    source: str  # "quota" or "lfs quota"
    used_kib: int
    soft_kib: Optional[int]  # None: no limit
    hard_kib: Optional[int]


@dataclass(frozen=True)
class DirFacts:
    role: str  # "cache" or "tmp"
    path: str
    config_key: str  # cache.dir / cache.tmp_dir
    source: str  # where the configured value came from
    exists: bool = False
    created: bool = False  # the doctor created it (convert would have)
    fstype: Optional[str] = None
    mountpoint: Optional[str] = None
    device: Optional[int] = None
    free_bytes: Optional[int] = None
    total_bytes: Optional[int] = None
    excl_ok: Optional[bool] = None  # O_CREAT|O_EXCL refuses an existing file
    rename_ok: Optional[bool] = None  # rename() over an existing file replaces it
    error: str = ""
    quota: Optional[QuotaFacts] = None


@dataclass(frozen=True)
class BindFacts:
    src: str
    dst: str
    per_task: bool
    origin: str  # "job" or "site default"
    problem: Optional[tuple[str, str]] = None  # (what, fix) from the site's bind rules


@dataclass(frozen=True)
class SlurmFacts:
    limits: Optional[ClusterLimits] = None
    mpi_plugins: Optional[tuple[str, ...]] = None  # from `srun --mpi=list`
    error: str = ""


@dataclass(frozen=True)
class HostMpiFacts:
    mpirun: Optional[str] = None
    version_output: str = ""

    @property
    def family(self) -> str:
        """openmpi | mpich | intel | unknown, from ``mpirun --version``."""
        text = self.version_output.lower()
        if "open mpi" in text or "openrte" in text:
            return "openmpi"
        if "intel(r) mpi" in text:
            return "intel"
        if "hydra" in text or "mpich" in text:
            return "mpich"
        return "unknown"


@dataclass(frozen=True)
class GpuHostFacts:
    libraries: tuple[str, ...] = ()  # GPU user-space libraries the dynamic linker knows here
    tools: tuple[str, ...] = ()  # nvidia-smi / rocm-smi found on PATH


@dataclass(frozen=True)
class Facts:
    runtime: RuntimeFacts
    kernel: KernelFacts
    fuse: FuseFacts
    dirs: tuple[DirFacts, ...]
    slurm: SlurmFacts
    mpi: HostMpiFacts = field(default_factory=HostMpiFacts)
    gpu: GpuHostFacts = field(default_factory=GpuHostFacts)
    binds: tuple[BindFacts, ...] = ()
    image: Optional[ImageFacts] = None
    zstd: Optional[ZstdFacts] = None  # the zstd probe (hpcbridge/doctor/zstd.py)


@dataclass(frozen=True)
class ImageFacts:
    """The job's image, if already converted here, and one real run of it."""

    ref: str
    runtime: str = "apptainer"
    sif: Optional[str] = None
    digest: Optional[str] = None
    error: str = ""  # why there is no SIF yet
    exec_ok: Optional[bool] = None  # None: not tried (no runtime, no SIF, no /bin/sh)
    exec_error: str = ""
    exec_seconds: Optional[float] = None
    mpi_libs: tuple[str, ...] = ()  # MPI libraries found inside the image
