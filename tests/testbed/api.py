"""What tests see of the testbed: :class:`Testbed` (the ``testbed`` fixture's value)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from hpcbridge import runner
from tests.testbed import config as C
from tests.testbed import lifecycle, slurm
from tests.testbed.procs import PidRegistry
from tests.testbed.users import REPO, User, as_user_argv

SITE_CONFIGS = {"22.05": "testbed.toml", "26.05": "testbed-26.05.toml"}
# How each cluster runs an MPI program with srun: (the image's MPI, srun --mpi=).  Open MPI
# needs pmix, which Debian's 26.05 lacks (and pmi2 fails in its MPI_Init): MPICH there.
SRUN_MPI = {"22.05": ("openmpi", "pmix"), "26.05": ("mpich", "pmi2")}
ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}


@dataclass(frozen=True)
class ImageInfo:
    """One test image: in the local registry and saved in the other source formats."""

    name: str
    ref: str  # 127.0.0.1:5000/hpcb/<name>:<tag> (no scheme)
    digest: str  # sha256:<manifest digest>
    docker_archive: Path
    oci_dir: Path
    oci_archive: Path


class UserCommandFailed(subprocess.CalledProcessError):
    """A command run as the test user failed; the message carries its output."""

    def __str__(self) -> str:
        out = (self.stdout or "")[-2000:]
        err = (self.stderr or "")[-2000:]
        return f"{super().__str__()}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"


class Testbed:
    """A running testbed (read from ``<state>/testbed.json``)."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, state: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._reconfiguring = False
        self._load(state)

    @classmethod
    def from_state_dir(cls, state_dir: Optional[Path] = None) -> Testbed:
        layout = C.Layout(state_dir or C.state_dir())
        state = lifecycle.read_state(layout)
        if state is None:
            raise RuntimeError(f"no testbed at {layout.root}: run python -m tests.testbed up")
        return cls(state)

    def _load(self, state: Mapping[str, Any]) -> None:
        self.state: dict[str, Any] = dict(state)
        self.state_dir = Path(state["state_dir"])
        self.cache_dir = Path(state["cache_dir"])
        self.slurm_conf = Path(state["slurm_conf"])
        self.user = User.from_dict(state["user"])
        self.env: dict[str, str] = dict(state["env"])
        self.knobs = C.Knobs.from_dict(state["knobs"])
        self.release = self.knobs.slurm  # "22.05" or "26.05"
        self.slurm_facts: dict[str, Any] = dict(state.get("slurm") or {})
        self.nodes: list[str] = sorted(state["nodes"])
        self.registry: Optional[str] = state.get("registry")
        self.bin_dir: Optional[Path] = Path(state["bin_dir"]) if state.get("bin_dir") else None
        self.slurm_bin: Optional[Path] = (
            Path(state["slurm_bin"]) if state.get("slurm_bin") else None
        )  # 26.05: the Slurm client wrappers alone (22.05: the host's /usr/bin)
        self.repo = Path(state.get("repo") or REPO)

    @property
    def site_config(self) -> Path:
        """The site file that describes this cluster: site-configs/testbed.toml (22.05) or
        site-configs/testbed-26.05.toml (26.05: its cluster name, pmi2 for every MPI)."""
        name = SITE_CONFIGS[self.release]
        return self.repo / "site-configs" / name

    def site_env(self) -> dict[str, str]:
        """``HPCBRIDGE_SITE_CONFIG`` naming :attr:`site_config`."""
        return {"HPCBRIDGE_SITE_CONFIG": str(self.site_config)}

    @property
    def srun_mpi(self) -> tuple[str, str]:
        """(MPI flavour, srun --mpi= value) that launch with srun on this cluster."""
        return SRUN_MPI[self.release]

    def login_path(self) -> str:
        """``PATH`` of a login node without a container runtime: the Slurm clients of this
        cluster, no Apptainer."""
        parts = [str(self.slurm_bin)] if self.slurm_bin else []
        parts += [p for p in self.env["PATH"].split(":") if p and p != str(self.bin_dir)]
        return ":".join(parts)

    # ------------------------------------------------------------ running things

    @property
    def apptainer(self) -> Path:
        """The ``apptainer`` wrapper (first on ``env['PATH']``)."""
        if self.bin_dir is None:
            raise LookupError(
                f"the testbed has no Apptainer yet (missing: {self.state.get('missing')})"
            )
        return self.bin_dir / "apptainer"

    def image(self, name: str) -> ImageInfo:
        images: dict[str, dict[str, Any]] = self.state.get("images") or {}
        if name not in images:
            raise LookupError(
                f"test image {name!r} not built; have {sorted(images)} "
                f"(missing parts: {self.state.get('missing')})"
            )
        d = images[name]
        return ImageInfo(
            name=name,
            ref=str(d["ref"]),
            digest=str(d["digest"]),
            docker_archive=Path(d["docker_archive"]),
            oci_dir=Path(d["oci_dir"]),
            oci_archive=Path(d["oci_archive"]),
        )

    def _env(self, env: Optional[Mapping[str, str]]) -> dict[str, str]:
        merged = dict(self.env)
        merged.setdefault("LANG", "C.UTF-8")
        if env:
            merged.update(env)
        return merged

    def run(
        self,
        argv: Sequence[Union[str, os.PathLike[str]]],
        *,
        cwd: Optional[Union[str, os.PathLike[str]]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120,
        check: bool = True,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as root with the testbed environment (for admin commands)."""
        return self._run([str(a) for a in argv], cwd, self._env(env), timeout, check, input)

    def run_as_user(
        self,
        argv: Sequence[Union[str, os.PathLike[str]]],
        cwd: Optional[Union[str, os.PathLike[str]]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120,
        check: bool = True,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the test user with ``tb.env`` (plus ``env`` on top).

        ``cwd`` defaults to the user's home.  With ``check`` a non-zero exit raises
        :class:`UserCommandFailed` (a CalledProcessError showing stdout and stderr).
        """
        full = as_user_argv(self.user, [str(a) for a in argv])
        return self._run(full, cwd or self.user.home, self._env(env), timeout, check, input)

    @staticmethod
    def _run(
        argv: list[str],
        cwd: Optional[Union[str, os.PathLike[str]]],
        env: dict[str, str],
        timeout: float,
        check: bool,
        input: Optional[str],
    ) -> subprocess.CompletedProcess[str]:
        done = runner.run(argv, env=env, cwd=cwd, timeout=timeout, check=False, input=input)
        if check and done.returncode != 0:
            raise UserCommandFailed(done.returncode, argv, done.stdout, done.stderr)
        return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)

    def hpcbridge(
        self,
        *args: Union[str, os.PathLike[str]],
        cwd: Optional[Union[str, os.PathLike[str]]] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
        timeout: float = 600,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """``.venv/bin/hpcbridge ARGS`` as the test user with ``tb.env``."""
        exe = self.repo / ".venv" / "bin" / "hpcbridge"
        return self.run_as_user(
            [str(exe), *map(str, args)],
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=check,
            input=input,
        )

    def user_dir(self, name: str) -> Path:
        """A fresh, empty directory owned by the test user under its home."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "dir"
        base = self.user.home / "tb"
        if not base.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            os.chown(base, self.user.uid, self.user.gid)
        path = Path(tempfile.mkdtemp(prefix=f"{safe}-{next(self._counter)}-", dir=base))
        os.chown(path, self.user.uid, self.user.gid)
        os.chmod(path, 0o755)
        return path

    # ------------------------------------------------------------ Slurm helpers

    def job_states(self, job_ids: Iterable[Union[str, int]]) -> dict[str, str]:
        """``scontrol show job`` states of the jobs (array tasks as ``<id>_<task>``)."""
        out: dict[str, str] = {}
        for jid in job_ids:
            done = self.run(["scontrol", "-o", "show", "job", str(jid)], check=False, timeout=30)
            for line in done.stdout.splitlines():
                fields = dict(
                    f.split("=", 1) for f in line.split() if "=" in f and not f.startswith("=")
                )
                key = fields.get("JobId", str(jid))
                if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
                    key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
                out[key] = fields.get("JobState", "UNKNOWN")
        return out

    def wait_for_jobs(
        self, job_ids: Iterable[Union[str, int]], timeout: float = 120
    ) -> dict[str, str]:
        """Wait until none of the jobs (or their array tasks) is pending or running.

        Returns the final state of every job / array task (``<id>_<task>``) seen
        finishing: from ``squeue -t all`` while polling (so a small MinJobAge set by
        another session does not lose them), then from scontrol for what it still
        remembers.  Keeps waiting while the controller restarts.  Raises TimeoutError
        naming the jobs still active.
        """
        ids = [str(j) for j in job_ids]
        deadline = time.monotonic() + timeout
        delay = 0.1
        final: dict[str, str] = {}
        while True:
            rows = self._squeue(ids)
            active = {k: v for k, v in rows.items() if v in ACTIVE_STATES or v == "UNREACHABLE"}
            final.update({k: v for k, v in rows.items() if k not in active})
            if not active:
                final.update(self.job_states(ids))
                return {k: v for k, v in final.items() if "[" not in k}
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still active after {timeout:g} s: {active}")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _squeue(self, ids: list[str]) -> dict[str, str]:
        """``<id>[_<task>]`` -> state of the jobs squeue still knows (finished ones included)."""
        done = self.run(
            ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(ids)],
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                # squeue refuses the whole list if one job was purged: ask one by one.
                rows: dict[str, str] = {}
                if len(ids) > 1:
                    for jid in ids:
                        rows.update(self._squeue([jid]))
                return rows
            return {i: "UNREACHABLE" for i in ids}  # controller restarting: keep waiting
        rows = {}
        for line in done.stdout.splitlines():
            jid, _, st = line.partition("|")
            if jid:
                rows[jid.strip()] = st.strip()
        return rows

    def sbatch(self, *args: str, cwd: Optional[Union[str, os.PathLike[str]]] = None) -> str:
        """``sbatch --parsable ARGS`` as the test user; returns the job id."""
        done = self.run_as_user(["sbatch", "--parsable", *args], cwd=cwd)
        return done.stdout.strip().split(";")[0]

    # ------------------------------------------------------------ knobs

    @contextlib.contextmanager
    def reconfigure(self, **knobs: Any) -> Iterator[Testbed]:
        """Run the block on a cluster with ``knobs`` changed; restore the previous knobs after.

        Rewrites slurm.conf, restarts slurmctld/slurmd when the config changed (jobs
        and their state survive a restart), starts or stops accounting.  An exclusive
        flock on ``<state>/.knobs.lock`` serializes reconfigurations of concurrent
        pytest sessions for the whole block.
        """
        with self._lock:
            if self._reconfiguring:
                raise RuntimeError("tb.reconfigure() blocks cannot be nested")
            self._reconfiguring = True
        try:
            layout = C.Layout(self.state_dir)
            with lifecycle.flock(layout.knobs_lock):
                before = C.Knobs.from_dict((lifecycle.read_state(layout) or {})["knobs"])
                wanted = before.replace(**knobs)
                self._load(lifecycle.up(wanted.to_dict(), quiet=True, state_dir=self.state_dir))
                self.state["knobs_before"] = before.to_dict()
                try:
                    yield self
                finally:
                    self._load(lifecycle.up(before.to_dict(), quiet=True, state_dir=self.state_dir))
        finally:
            self._reconfiguring = False

    @contextlib.contextmanager
    def slurmctld_stopped(self) -> Iterator[None]:
        """slurmctld stopped (by its recorded PID) for the block, started again after.

        Holds the testbed lock meanwhile, so a concurrent ``up`` (another session's
        fixture) waits instead of restarting the controller under the test.
        """
        layout = C.Layout(self.state_dir)
        with lifecycle.flock(layout.lock):
            pids = PidRegistry(self.state_dir)
            if not pids.stop("slurmctld"):
                raise RuntimeError("slurmctld was not running")
            try:
                yield
            finally:
                slurm.start_slurmctld(layout, pids)

    def rate_limit_events(self, uid: Optional[int] = None) -> list[str]:
        """slurmctld's log lines of throttled RPCs (of ``uid``, default the test user's).

        With ``rl_enable`` a throttled client gets SLURMCTLD_COMMUNICATIONS_BACKOFF; the
        26.05 client commands then sleep 1, 2, 3... s and retry, silently (``-v`` prints
        "RPC rate limited N time(s). Sleeping then trying again."), so this log is where
        a test sees that a client went over its bucket.
        """
        who = self.user.uid if uid is None else uid
        needle = f"RPC rate limit exceeded by uid {who} "
        try:
            text = (self.state_dir / "log" / "slurmctld.log").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if needle in line]

    def refresh(self) -> None:
        state = lifecycle.read_state(C.Layout(self.state_dir))
        if state:
            self._load(state)

    def __repr__(self) -> str:
        knobs = json.dumps(self.knobs.to_dict())
        return f"Testbed({self.state_dir}, slurm {self.release}, nodes={self.nodes}, knobs={knobs})"
