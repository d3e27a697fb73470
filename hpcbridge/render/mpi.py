"""MPI launch plans: the launcher argv, the PMI type, transport settings (pure).

Facts verified on the testbed (Apptainer 1.4.5 unprivileged, Slurm 22.05, two
nodes): Open MPI + ``srun --mpi=pmix`` works, Open MPI + pmi2 fails in MPI_Init,
MPICH + ``srun --mpi=pmi2`` works once UCX stops using cross-namespace shared
memory, MPICH + pmix silently runs N one-rank jobs.  Each unprivileged
``apptainer`` process gets its own user namespace, so UCX's ``cma`` transport and
its ``/proc/<pid>/fd`` links fail between ranks on one node; the site config's
``mpi.mpich_env`` (default ``UCX_TLS=^cma``, ``UCX_POSIX_USE_PROC_LINK=n``) is set
inside the ranks unless the job sets the variable itself.  Known-bad
launcher/PMI pairings are refused when the image's flavour is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hpcbridge.config.schema import Config
from hpcbridge.config.validate import effective_pmi
from hpcbridge.errors import JobSpecError
from hpcbridge.job.spec import JobSpec, bad_pairing
from hpcbridge.render.words import Arg, Var, Word


@dataclass(frozen=True)
class MpiPlan:
    prefix: tuple[Arg, ...]  # argv before the launcher ("srun", "--mpi=pmix", srun_options...)
    pmi: Optional[str]
    env: tuple[tuple[str, str, str], ...]  # (note, NAME, value) set inside every rank
    bind_dir: Optional[str]  # bind model: the host MPI installation


def plan(job: JobSpec, cfg: Config) -> MpiPlan:
    mpi = job.mpi
    if not mpi.enabled:
        return MpiPlan((), None, (), None)
    if mpi.flavor == "unknown":
        # harmless for Open MPI, needed by MPICH: use both when the flavour is unknown
        settings = {**cfg.mpi.env_for("openmpi"), **cfg.mpi.env_for("mpich")}
    else:
        settings = cfg.mpi.env_for(mpi.flavor)
    env: list[tuple[str, str, str]] = []
    note = "MPI ranks: settings from the site config (mpi.env, mpi.<flavour>_env)"
    for name, value in settings.items():
        if name in job.env:
            continue  # the job's own value wins
        env.append((note, name, value))
        note = ""
    bind_dir = mpi.host_mpi_dir if mpi.model == "bind" else None
    if mpi.type == "srun":
        pmi = effective_pmi(job, cfg)
        problem = bad_pairing(mpi.flavor, pmi)
        if problem:
            raise JobSpecError(
                f"mpi.flavor = {mpi.flavor!r} with srun --mpi={pmi} does not work", problem
            )
        prefix = ("srun", f"--mpi={pmi}", *mpi.srun_options)
        return MpiPlan(prefix, pmi, tuple(env), bind_dir)
    # mpirun inside the allocation: one rank per Slurm task
    mpirun = f"{bind_dir}/bin/mpirun" if bind_dir else "mpirun"
    ntasks = Word.of(Var("SLURM_NTASKS"))
    return MpiPlan((mpirun, "-n", ntasks), None, tuple(env), bind_dir)
