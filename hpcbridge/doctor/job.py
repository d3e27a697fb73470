"""Checks of a job against the site and the cluster: binds, rules, GPU, MPI, Slurm limits (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from hpcbridge.config import Config
from hpcbridge.config.validate import (
    effective_gpu_vendor,
    effective_partition_name,
    effective_pmi,
    resolve_partition,
    validate_job,
)
from hpcbridge.doctor.facts import BindFacts, GpuHostFacts, HostMpiFacts, ImageFacts, SlurmFacts
from hpcbridge.doctor.findings import Finding, Status, fail, ok, warn
from hpcbridge.doctor.image import image_flavors
from hpcbridge.errors import HpcbridgeError, JobSpecError
from hpcbridge.job.spec import BAD_PAIRINGS, JobSpec
from hpcbridge.scheduler.base import ClusterLimits
from hpcbridge.scheduler.slurm_pyslurm import USE_CLI, backend_note
from hpcbridge.submit.plan import plan_chunks

GPU_LIBRARIES = {
    "nvidia": ("libcuda.so.1", "libnvidia-ml.so.1"),
    "amd": ("libamdhip64.so", "libhsa-runtime64.so.1"),
}
GOOD_PMI = {"openmpi": "pmix", "mpich": "pmi2"}


def check_binds(binds: Sequence[BindFacts]) -> list[Finding]:
    out: list[Finding] = []
    for b in binds:
        if b.problem is not None:
            what, fix = b.problem
            out.append(fail("bind", f"{b.origin} bind {b.src} -> {b.dst}: source {what}", fix))
    if binds and not out:
        per_task = sum(1 for b in binds if b.per_task)
        extra = f" ({per_task} per task, created at submit)" if per_task else ""
        out.append(ok("bind", f"{len(binds)} bind sources exist and none is denied{extra}"))
    return out


def check_job_rules(job: JobSpec, cfg: Config) -> list[Finding]:
    """What ``submit`` would refuse: the site's partition, time, resource and bind rules."""
    try:
        validate_job(job, cfg)
    except JobSpecError as exc:
        return [fail("job", exc.message, exc.hint or "fix the job file")]
    part = effective_partition_name(job, cfg) or "the cluster default"
    return [ok("job", f"{job.name}: {len(job.task_ids)} task(s) on {part} pass the site's rules")]


def check_gpu(job: JobSpec, cfg: Config, host: GpuHostFacts) -> list[Finding]:
    try:
        vendor = effective_gpu_vendor(job, cfg)
        part = resolve_partition(job, cfg)
    except HpcbridgeError as exc:
        return [fail("gpu", exc.message, exc.hint or "fix resources.partition")]
    if vendor is None and not job.gpu_count:
        return []
    pname = effective_partition_name(job, cfg) or "the default partition"
    if part is None:
        return [
            warn(
                "gpu",
                f"GPUs requested but the site describes no partition {pname!r}: "
                "cannot tell --nv from --rocm",
                'set gpu.vendor = "nvidia" or "amd" in the job (or ask the admins)',
            )
        ]
    if not part.has_gpus:
        return [
            fail("gpu", f"GPUs requested on {pname!r}, which has none", "choose a GPU partition")
        ]
    if vendor is None:
        vendor = part.gpu_vendor
    flag = "--nv" if vendor == "nvidia" else "--rocm"
    if vendor != part.gpu_vendor:
        return [
            fail(
                "gpu",
                f"the job wants {vendor} GPUs ({flag}) but {pname!r} has {part.gpu_vendor} GPUs",
                f'set gpu.vendor = "{part.gpu_vendor}" or choose another partition',
            )
        ]
    out = [ok("gpu", f"{vendor} GPUs on partition {pname!r}: the container runs with {flag}")]
    wanted = GPU_LIBRARIES.get(vendor, ())
    found = [lib for lib in wanted if lib in host.libraries]
    if found:
        out.append(ok("gpu", f"{', '.join(found)} present on this node"))
    else:
        out.append(
            ok(
                "gpu",
                f"{' and '.join(wanted)} can only be checked on a GPU node: "
                f"srun -p {part.name} --gres=gpu:1 hpcbridge doctor JOB.toml",
            )
        )
    return out


def check_mpi(
    job: JobSpec,
    cfg: Config,
    slurm: SlurmFacts,
    host: HostMpiFacts,
    image: Optional[ImageFacts] = None,
) -> list[Finding]:
    if not job.mpi.enabled:
        return []
    declared = job.mpi.flavor
    detected = image_flavors(image)
    out: list[Finding] = []
    actual = declared
    if detected is not None:
        libs = (
            ", ".join(sorted({lib.rsplit("/", 1)[-1] for lib in image.mpi_libs})[:4])
            if image
            else ""
        )
        names = " and ".join(sorted(detected))
        if not detected:
            out.append(
                warn(
                    "mpi",
                    "no MPI library (libmpi*, libmpich*, libopen-pal*) found in the image",
                    "use an image built with Open MPI or MPICH, or mpi.model = bind",
                )
            )
        elif declared != "unknown" and declared not in detected:
            out.append(
                fail(
                    "mpi",
                    f"mpi.flavor = {declared!r} but the image has {names} ({libs})",
                    f'set mpi.flavor = "{sorted(detected)[0]}"',
                )
            )
        elif declared == "unknown":
            if len(detected) == 1:
                actual = next(iter(detected))
            choice = (
                f'set mpi.flavor = "{actual}"'
                if len(detected) == 1
                else 'set mpi.flavor to the MPI your program links ("mpich" or "openmpi")'
            )
            out.append(
                warn(
                    "mpi",
                    f"mpi.flavor is not set; the image has {names} ({libs})",
                    choice + " so the launcher and PMI match it",
                )
            )
    elif declared == "unknown":
        out.append(
            warn(
                "mpi",
                "mpi.flavor is unknown: cannot check the launcher pairing "
                "(Open MPI needs pmix, MPICH pmi2)",
                'set mpi.flavor = "openmpi" or "mpich" (the MPI inside the image)',
            )
        )
    if job.mpi.type == "srun":
        out += _check_srun(job, cfg, slurm, actual)
    elif job.mpi.type == "mpirun":
        out += _check_mpirun(host, actual)
    return out


def _check_srun(job: JobSpec, cfg: Config, slurm: SlurmFacts, flavor: str) -> list[Finding]:
    pmi = effective_pmi(job, cfg) or "none"
    source = "mpi.pmi in the job" if job.mpi.pmi else "the site's default for this image"
    out: list[Finding] = []
    if slurm.mpi_plugins is None:
        out.append(
            warn(
                "mpi",
                f"srun --mpi=list failed: {slurm.error or 'no answer'}",
                "run the doctor where srun works",
            )
        )
    elif pmi not in slurm.mpi_plugins:
        out.append(
            fail(
                "mpi",
                f"srun --mpi={pmi} ({source}) is not available here; "
                f"srun offers {', '.join(slurm.mpi_plugins)}",
                f"set mpi.pmi to one of {', '.join(p for p in slurm.mpi_plugins if p != 'none')}",
            )
        )
    if (flavor, pmi) in BAD_PAIRINGS:
        out.append(
            fail(
                "mpi",
                f"the image's {flavor} with srun --mpi={pmi}: {BAD_PAIRINGS[(flavor, pmi)]}",
                f'set mpi.pmi = "{GOOD_PMI[flavor]}"',
            )
        )
    if not out or all(f.status == Status.OK for f in out):
        suits = f" and suits {flavor}" if flavor != "unknown" else ""
        out.append(ok("mpi", f"srun --mpi={pmi} is available{suits}"))
    return out


def _check_mpirun(host: HostMpiFacts, flavor: str) -> list[Finding]:
    if host.mpirun is None:
        return [
            fail(
                "mpi",
                "mpi.type = mpirun but no mpirun on the host",
                f"load the host MPI module ({flavor} family) before submitting",
            )
        ]
    family = host.family
    compatible = {family} | ({"mpich"} if family == "intel" else set())
    if flavor != "unknown" and family != "unknown" and flavor not in compatible:
        return [
            fail(
                "mpi",
                f"host mpirun ({host.mpirun}) is {family} but the job uses {flavor} in the "
                "image: the hybrid model needs the same MPI family inside and outside",
                f"load a {flavor} module on the host, or use mpi.type = srun",
            )
        ]
    return [ok("mpi", f"host mpirun is {family} ({host.mpirun}); the image has {flavor}")]


def check_backend(cfg: Config) -> list[Finding]:
    """The scheduler backend: pyslurm is experimental (one warning)."""
    note = backend_note(cfg.scheduler.backend)
    return [warn("scheduler", note, USE_CLI)] if note else []


def check_slurm(job: Optional[JobSpec], cfg: Config, slurm: SlurmFacts) -> list[Finding]:
    if slurm.limits is None:
        return [
            warn(
                "slurm",
                f"cannot read the Slurm configuration: {slurm.error or 'no answer'}",
                "run the doctor on a login node where scontrol works",
            )
        ]
    lim = slurm.limits
    head = f"Slurm {lim.slurm_version or '?'}: MaxArraySize={lim.max_array_size}, MaxJobCount={lim.max_job_count}"
    if lim.max_submit_jobs is not None:
        head += f", your MaxSubmitJobs={lim.max_submit_jobs}"
    if job is None or job.array is None:
        return [ok("slurm", head)]
    return _check_array(job, cfg, lim, head)


def _check_array(job: JobSpec, cfg: Config, lim: ClusterLimits, head: str) -> list[Finding]:
    tasks = job.task_ids
    n = len(tasks)
    out: list[Finding] = []
    later = "keep `hpcbridge watch ID` running: it submits the held-back chunks as tasks finish"
    if n > lim.max_job_count:
        out.append(
            warn(
                "slurm",
                f"{n} tasks exceed MaxJobCount={lim.max_job_count} (all jobs the controller "
                "holds): only part of the array can be queued at once",
                later,
            )
        )
    if lim.max_submit_jobs is not None and n > lim.max_submit_jobs:
        out.append(
            warn(
                "slurm",
                f"{n} tasks exceed your MaxSubmitJobs={lim.max_submit_jobs}: submit queues "
                f"{lim.max_submit_jobs} now and holds the rest back",
                later,
            )
        )
    size = lim.max_array_size
    if cfg.limits.max_array_size:
        size = min(size, cfg.limits.max_array_size)
    per_chunk = min(size, lim.max_job_count, lim.max_submit_jobs or size)
    chunks = plan_chunks(tasks, max_array_size=size, max_tasks=per_chunk)
    if not out:
        split = (
            f"; indices up to {max(tasks)} go in {len(chunks)} sbatch arrays "
            f"(MaxArraySize caps the index)"
            if len(chunks) > 1
            else ""
        )
        out.append(ok("slurm", f"{head}; {n} tasks fit{split}"))
    return out
