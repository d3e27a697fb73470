"""The job description: frozen dataclasses (pure).

:class:`JobSpec` is what a job file becomes once validated
(:func:`hpcbridge.job.load.load_job`); everything else in hpcbridge reads jobs
through it.

Decisions where the issue was silent (documented in docs/site-admin.md and
docs/jobs.md):

* Memory is stored in MiB, time limits in seconds; both are re-emitted in one
  canonical form (:func:`~hpcbridge.slurm_syntax.format_mem`,
  :func:`~hpcbridge.slurm_syntax.format_time`).
* Job names are refused (not sanitized) when given explicitly and invalid; the
  default name (job file stem) is sanitized.  Valid: ``[A-Za-z0-9][A-Za-z0-9._+-]*``,
  at most :data:`MAX_NAME_LEN` characters, so it is safe in ``%x`` log names.
* Per-task placeholders are Python format fields (``{task}``, ``{task:04d}``,
  ``{input}``, ``{input_name}``, ``{input_stem}``); literal braces are ``{{``/``}}``.
  Per-rank ones (``{rank}``, ``{local_rank}``, ``{node}``) and, in host paths,
  ``$VAR`` are resolved by each task on its node.  The ``script`` text is never
  templated (use ``$HPCBRIDGE_TASK`` etc. there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Optional, Union

from hpcbridge.errors import JobSpecError
from hpcbridge.slurm_syntax import ArraySpec, format_mem, format_time, pmi_family

#: Longest job name accepted: hpcbridge's own limit, well under Slurm's 1024 characters
#: (sbatch fails beyond), so ``%x`` log file names stay usable.
MAX_NAME_LEN = 128

MPI_TYPES = ("none", "srun", "mpirun")
MPI_MODELS = ("hybrid", "bind")
MPI_FLAVORS = ("openmpi", "mpich", "unknown")
GPU_VENDORS = ("nvidia", "amd")
DEPENDENCY_TYPES = (
    "after",
    "afterany",
    "afterok",
    "afternotok",
    "aftercorr",
    "afterburstbuffer",
    "singleton",
)
#: Launcher/PMI pairings verified broken on the testbed (see docs/jobs.md), by the
#: PMI's family (``pmix_v4`` is ``pmix``): see :func:`bad_pairing`.
BAD_PAIRINGS = {
    ("openmpi", "pmi2"): 'Open MPI fails in MPI_Init with srun --mpi=pmi2; use pmi = "pmix"',
    ("mpich", "pmix"): (
        'MPICH with srun --mpi=pmix runs every rank as its own 1-rank job; use pmi = "pmi2"'
    ),
}


def bad_pairing(flavor: str, pmi: Optional[str]) -> Optional[str]:
    """Why the image's MPI ``flavor`` cannot work with ``srun --mpi=pmi`` (None: it can)."""
    return None if pmi is None else BAD_PAIRINGS.get((flavor, pmi_family(pmi)))


@dataclass(frozen=True)
class Resources:
    """What the job asks Slurm for.  ``time`` in seconds, memory in MiB."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time: Optional[int] = None
    nodes: Optional[int] = None
    ntasks: Optional[int] = None
    ntasks_per_node: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem: Optional[int] = None
    mem_per_cpu: Optional[int] = None
    gpus: Optional[int] = None
    gpus_per_node: Optional[int] = None
    gres: Optional[str] = None
    constraint: Optional[str] = None
    exclusive: bool = False

    @property
    def time_str(self) -> Optional[str]:
        """``--time`` value in canonical form (``HH:MM:SS`` / ``D-HH:MM:SS``)."""
        return None if self.time is None else format_time(self.time)

    @property
    def mem_str(self) -> Optional[str]:
        return None if self.mem is None else format_mem(self.mem)

    @property
    def mem_per_cpu_str(self) -> Optional[str]:
        return None if self.mem_per_cpu is None else format_mem(self.mem_per_cpu)


@dataclass(frozen=True)
class Bind:
    """A bind mount.  ``src`` is an absolute host path (may hold placeholders when
    ``per_task``, ``$VAR`` and per-rank placeholders when ``run_time``), ``dst`` an
    absolute container path."""

    src: str
    dst: str
    mode: str = "rw"  # "ro" | "rw"
    per_task: bool = False  # src/dst hold placeholders: expanded (and rw sources created) per task
    options: tuple[str, ...] = ()  # Apptainer bind options besides ro/rw: image-src=..., id=N
    run_time: bool = False  # src holds $VAR or {rank}/{local_rank}/{node}: resolved on the node

    @property
    def read_only(self) -> bool:
        return self.mode == "ro"


@dataclass(frozen=True)
class Overlay:
    """``--overlay PATH[:ro]``: an ext3 image, a squashfs image or a directory."""

    path: str  # absolute host path; placeholders/$VAR as for bind sources
    mode: str = "rw"  # "ro" | "rw"
    per_task: bool = False  # holds {task}/{input...}
    run_time: bool = False  # holds $VAR or a per-rank placeholder: checked on the node

    @property
    def read_only(self) -> bool:
        return self.mode == "ro"


#: A value of a runtime flag from the job's ``[apptainer]`` table.
FlagValue = Union[bool, int, str, tuple[str, ...]]


class RuntimeFlag(NamedTuple):
    """One ``[apptainer]`` entry: the flag's long name (``contain``) and its value."""

    name: str
    value: FlagValue


@dataclass(frozen=True)
class MpiSpec:
    type: str = "none"  # none | srun | mpirun
    pmi: Optional[str] = None  # srun --mpi= (pmix, pmi2, cray_shasta, none...); None: site default
    model: str = "hybrid"  # hybrid | bind
    host_mpi_dir: Optional[str] = None  # bind model: host MPI installation (absolute)
    flavor: str = "unknown"  # the image's MPI: openmpi | mpich | unknown
    srun_options: tuple[str, ...] = ()  # "--cpu-bind=mask_cpu:0x1,0x2", ... (srun only)

    @property
    def enabled(self) -> bool:
        return self.type != "none"


@dataclass(frozen=True)
class GpuSpec:
    vendor: Optional[str] = None  # nvidia | amd; None: the partition's vendor
    count: int = 0  # GPUs per node (0: none requested through [gpu])


@dataclass(frozen=True)
class Dependency:
    type: str  # afterok, afterany, ... (see DEPENDENCY_TYPES)
    ids: tuple[str, ...] = ()  # Slurm job ids ("123", "123_4") or hpcbridge submission ids

    @staticmethod
    def is_slurm_id(job_id: str) -> bool:
        head, _, tail = job_id.partition("_")
        return head.isdigit() and (not tail or tail.isdigit())


@dataclass(frozen=True)
class JobSpec:
    """A validated job.  Paths on the host are absolute; templates stay unexpanded."""

    name: str
    image: str
    command: Optional[tuple[str, ...]] = None  # argv run in the container ...
    script: Optional[str] = None  # ... or text run by /bin/sh in the container ...
    run: Optional[tuple[str, ...]] = None  # ... or the runscript's arguments (apptainer run)
    app: Optional[str] = None  # --app NAME
    pwd: Optional[str] = None  # container cwd (--pwd); None: image WorkingDir, else submit cwd
    pwd_key: str = "pwd"  # the key that set it: "pwd", or "workdir" (its old name)
    resources: Resources = field(default_factory=Resources)
    array: Optional[ArraySpec] = None
    inputs: tuple[str, ...] = ()  # absolute host paths; task i gets inputs[i] as {input}
    binds: tuple[Bind, ...] = ()
    overlays: tuple[Overlay, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    host_env: tuple[str, ...] = ()  # host variables forwarded under their own name (NAME, PRE*)
    env_command: Mapping[str, str] = field(default_factory=dict)  # NAME -> command, on the node
    apptainer: tuple[RuntimeFlag, ...] = ()  # runtime flags ([apptainer] table)
    apptainer_env: Mapping[str, str] = field(default_factory=dict)  # APPTAINER_* for the runtime
    mpi: MpiSpec = field(default_factory=MpiSpec)
    gpu: GpuSpec = field(default_factory=GpuSpec)
    modules: tuple[str, ...] = ()
    pre: tuple[str, ...] = ()  # host shell lines before the container runs
    post: tuple[str, ...] = ()  # host shell lines after it
    extra_sbatch: tuple[str, ...] = ()  # raw "--option=value" lines
    dependencies: tuple[Dependency, ...] = ()
    signal: Optional[str] = None  # sbatch --signal, e.g. "USR1@60"
    requeue: Optional[bool] = None  # None: Slurm's default
    output: Optional[str] = None  # log pattern; None: %x_%A_%a.out (arrays) / %x_%j.out
    error: Optional[str] = None
    job_dir: str = "."  # directory of the job file (relative paths were resolved there)
    source: Optional[str] = None  # the job file path, when loaded from one

    @property
    def action(self) -> str:
        """The runtime's subcommand: ``run`` (the image's runscript) or ``exec``."""
        return "run" if self.run is not None else "exec"

    @property
    def is_array(self) -> bool:
        return self.array is not None

    @property
    def task_ids(self) -> tuple[int, ...]:
        """The global task indices (``(0,)`` for a plain job)."""
        return self.array.indices if self.array is not None else (0,)

    @property
    def gpu_count(self) -> int:
        """GPUs per node this job asks for, whichever field asked."""
        if self.gpu.count:
            return self.gpu.count
        r = self.resources
        if r.gpus_per_node:
            return r.gpus_per_node
        if r.gpus:
            return r.gpus
        return gres_gpu_count(r.gres)

    def input_for(self, task: int) -> Optional[str]:
        """The input path of global task ``task`` (None when the job has no inputs)."""
        if not self.inputs:
            return None
        if not 0 <= task < len(self.inputs):
            raise JobSpecError(
                f"task {task} has no input (the job has {len(self.inputs)} inputs)",
                f"use tasks 0-{len(self.inputs) - 1}",
            )
        return self.inputs[task]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (time and memory in canonical Slurm text form)."""
        d = asdict(self)
        d["env"] = dict(self.env)
        d["env_command"] = dict(self.env_command)
        d["apptainer_env"] = dict(self.apptainer_env)
        d["apptainer"] = {f.name: f.value for f in self.apptainer}
        d["resources"]["time"] = self.resources.time_str
        d["resources"]["mem"] = self.resources.mem_str
        d["resources"]["mem_per_cpu"] = self.resources.mem_per_cpu_str
        d["array"] = self.array.spec if self.array is not None else None
        return d


def gres_gpu_count(gres: Optional[str]) -> int:
    """GPUs asked for in a gres string (``gpu:2``, ``gpu:a100:2``, ``gpu``)."""
    total = 0
    for item in (gres or "").split(","):
        parts = item.strip().split(":")
        if parts and parts[0] == "gpu":
            last = parts[-1] if len(parts) > 1 else "1"
            total += int(last) if last.isdigit() else 1
    return total
