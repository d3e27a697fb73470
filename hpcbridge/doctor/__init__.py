"""``hpcbridge doctor``: preflight checks of this machine, the site and a job.

:func:`diagnose` is pure: it turns :class:`~hpcbridge.doctor.facts.Facts`
(gathered by :func:`hpcbridge.doctor.probe.gather`, the only part doing I/O)
into :class:`~hpcbridge.doctor.findings.Finding` values, each ok / warn / fail
with one line of fix.
"""

from __future__ import annotations

from typing import Optional

from hpcbridge.config import Config
from hpcbridge.doctor.facts import Facts
from hpcbridge.doctor.findings import Finding, Status, report_dict, worst
from hpcbridge.doctor.host import check_dirs, check_fuse, check_userns
from hpcbridge.doctor.image import check_image
from hpcbridge.doctor.job import (
    check_backend,
    check_binds,
    check_gpu,
    check_job_rules,
    check_mpi,
    check_slurm,
)
from hpcbridge.doctor.readable import check_zstd
from hpcbridge.doctor.runtime import check_runtime, runtime_missing
from hpcbridge.job.spec import JobSpec

__all__ = ["Finding", "Status", "diagnose", "report_dict", "worst"]


def diagnose(facts: Facts, cfg: Config, job: Optional[JobSpec] = None) -> list[Finding]:
    """Every finding, in the order a user fixes them (machine, storage, job, cluster)."""
    findings = check_runtime(facts.runtime)
    if not runtime_missing(facts.runtime):  # about running containers: not on this node
        findings += check_userns(facts.kernel, facts.runtime)
        findings += check_fuse(facts.fuse, facts.runtime)
    findings += check_zstd(facts.zstd)
    findings += check_dirs(facts.dirs)
    findings += check_binds(facts.binds)
    if job is not None:
        rules = check_job_rules(job, cfg)
        bind_failed = any(f.check == "bind" and f.status == Status.FAIL for f in findings)
        if not (bind_failed and rules[0].message.startswith("binds[")):
            findings += rules  # (a bind problem is already reported, with the same fix)
        findings += check_image(facts.image)
        findings += check_gpu(job, cfg, facts.gpu)
        findings += check_mpi(job, cfg, facts.slurm, facts.mpi, facts.image)
    findings += check_backend(cfg)
    findings += check_slurm(job, cfg, facts.slurm)
    return findings
