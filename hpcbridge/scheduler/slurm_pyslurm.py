"""The pyslurm backend (EXPERIMENTAL): the controller's job table through pyslurm's C API.

Experimental because no test has ever run it against a real pyslurm: pyslurm
releases track Slurm releases (a 25.11 pyslurm only builds against Slurm 25.11),
PyPI carries pyslurm only for Slurm 25.11 (and 2017-2018 releases), and the
testbed runs Slurm 22.05 and 26.05, for which no pyslurm exists.  Only its
conversion of a job object and its version check have unit tests.  hpcbridge
ships no ``[pyslurm]`` extra: pip would build pyslurm's sdist and fail without
the matching Slurm headers.

Used only when ``scheduler.backend = "pyslurm"``, pyslurm is importable AND its
version matches the running Slurm's major.minor; otherwise one line says why.
Submission, limits, cancellation and accounting stay on the command-line
clients; pyslurm replaces the ``squeue`` call of each poll cycle.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Sequence
from typing import Any, Optional

from hpcbridge import runner
from hpcbridge.errors import EnvironmentProblem, SchedulerUnavailable
from hpcbridge.scheduler.base import JobInfo, QueryResult
from hpcbridge.scheduler.slurm_cli import SlurmCLI
from hpcbridge.scheduler.states import map_state
from hpcbridge.slurm_syntax import parse_indices

log = logging.getLogger(__name__)


def major_minor(version: str) -> Optional[tuple[int, int]]:
    """``"slurm 22.05.8"`` / ``"25.11.0"`` -> (22, 5) / (25, 11)."""
    m = re.search(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def versions_match(pyslurm_version: str, slurm_version: str) -> bool:
    a, b = major_minor(pyslurm_version), major_minor(slurm_version)
    return a is not None and a == b


def running_slurm_version() -> str:
    done = runner.run(["sinfo", "--version"], check=False, timeout=30)
    return done.stdout.strip()


# One text for the config check, the doctor and the log of every command that uses it.
EXPERIMENTAL = (
    "scheduler.backend = pyslurm is experimental: no test has run it against a real "
    "pyslurm (PyPI has pyslurm only for Slurm 25.11)"
)
USE_CLI = "set scheduler.backend = cli (squeue/sacct, tested on Slurm 22.05 and 26.05)"


def backend_note(backend: str) -> Optional[str]:
    """What to say about a configured backend (None: nothing to say)."""
    return EXPERIMENTAL if backend == "pyslurm" else None


def load_pyslurm() -> Any:
    """Import pyslurm if it is installed and built for the running Slurm, else explain."""
    try:
        mod = importlib.import_module("pyslurm")
    except ImportError:
        raise EnvironmentProblem(
            "scheduler.backend = pyslurm (experimental), but pyslurm is not installed "
            "(hpcbridge has no [pyslurm] extra: pyslurm must be built against this "
            "Slurm's own release)",
            USE_CLI,
        ) from None
    have = str(getattr(mod, "__version__", ""))
    slurm_version = running_slurm_version()
    if not versions_match(have, slurm_version):
        raise EnvironmentProblem(
            f"pyslurm {have or '?'} does not match the running {slurm_version or 'Slurm'} "
            "(scheduler.backend = pyslurm, experimental)",
            f"build the pyslurm release for this Slurm, or {USE_CLI}",
        )
    log.warning("%s", EXPERIMENTAL)
    return mod


def job_info_from(job: Any) -> Optional[JobInfo]:
    """One pyslurm ``Job`` -> :class:`JobInfo` (None when it lacks an id or state)."""
    state = getattr(job, "state", None)
    job_id = getattr(job, "id", None)
    if state is None or job_id is None:
        return None
    array_id = getattr(job, "array_id", None)
    task: Any = getattr(job, "array_task_id", None)
    waiting = getattr(job, "array_tasks_waiting", None)
    task_ids: Optional[tuple[int, ...]] = None
    if array_id:
        if task is not None:
            task_ids = (int(task),)
        elif waiting:
            task_ids = parse_indices(str(waiting))
    return JobInfo(
        job_id=str(array_id or job_id),
        task_ids=task_ids,
        state=map_state(str(state)),
        raw_state=str(state),
        reason=str(getattr(job, "state_reason", "") or ""),
        comment=str(getattr(job, "comment", "") or ""),
    )


class PySlurm(SlurmCLI):
    """The command-line backend with the per-cycle queue query done by pyslurm."""

    name = "pyslurm"

    def __init__(self, cluster: Optional[str] = None) -> None:
        super().__init__(cluster)
        self._pyslurm = load_pyslurm()

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        version: str = "",
        queue_view: bool = False,
    ) -> QueryResult:
        try:
            jobs = self._pyslurm.Jobs.load()
        except Exception as exc:  # pyslurm raises its own RPCError
            raise SchedulerUnavailable(f"pyslurm could not load the job table: {exc}") from None
        wanted = set(job_ids)
        everything = queue_view or not wanted
        infos: list[JobInfo] = []
        for job in getattr(jobs, "values", lambda: jobs)():
            info = job_info_from(job)
            if info is None:
                continue
            mine = str(getattr(job, "user_name", user)) == user
            if (everything and mine) or info.job_id in wanted:
                infos.append(info)
        return QueryResult("squeue", tuple(infos))
