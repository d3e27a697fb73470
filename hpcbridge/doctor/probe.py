"""The thin I/O layer of the doctor: read /proc, stat files, try the directories, run tools.

Every path it reads is a field of :class:`Probe`, so tests can point it at other
files; commands go through :mod:`hpcbridge.runner`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from hpcbridge import runner
from hpcbridge.config import Config
from hpcbridge.doctor.facts import (
    BindFacts,
    DirFacts,
    Facts,
    FuseFacts,
    GpuHostFacts,
    HostMpiFacts,
    ImageFacts,
    KernelFacts,
    QuotaFacts,
    RuntimeFacts,
    SlurmFacts,
)
from hpcbridge.doctor.host import parse_lfs_quota, parse_quota
from hpcbridge.doctor.job import GPU_LIBRARIES
from hpcbridge.errors import CommandError, HpcbridgeError
from hpcbridge.job.spec import JobSpec

Which = Callable[[str], Optional[str]]
#: The names the runtimes install themselves under (Apptainer also installs `singularity`).
RUNTIME_NAMES = ("apptainer", "singularity")


@dataclass
class Probe:
    """Where the facts come from (defaults: this machine)."""

    fuse_device: str = "/dev/fuse"
    proc_sys: Path = Path("/proc/sys")
    mounts: Path = Path("/proc/mounts")
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    which: Which = shutil.which
    timeout: float = 30.0

    def run(self, argv: Sequence[str]) -> Optional[runner.Completed]:
        try:
            return runner.run(argv, check=False, timeout=self.timeout, env=dict(self.environ))
        except CommandError:
            return None

    # ---------------------------------------------------------------- runtime

    def runtime(self, cfg: Config) -> RuntimeFacts:
        rt = cfg.runtime
        in_job = self.environ.get("SLURM_JOB_ID", "")
        path = self.which(rt.executable)
        if path is None:
            return RuntimeFacts(
                rt.executable, rt.flavor, rt.version, others=self._others(), in_job=in_job
            )
        done = self.run([path, "--version"])
        first = (done.stdout.strip().splitlines() or [""])[0] if done else ""
        error = ""
        if done is None or done.returncode != 0:
            error = (done.stderr.strip().splitlines() or ["no output"])[-1] if done else "timed out"
        return RuntimeFacts(
            rt.executable,
            rt.flavor,
            rt.version,
            path,
            first,
            _suid_starter(path, rt.flavor),
            error,
            in_job=in_job,
        )

    def _others(self) -> tuple[tuple[str, str], ...]:
        """The runtimes on PATH under their usual names, with their ``--version`` line."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name in RUNTIME_NAMES:
            path = self.which(name)
            if path is None or os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            done = self.run([path, "--version"])
            if done is not None and done.returncode == 0:
                out.append((path, (done.stdout.strip().splitlines() or [""])[0]))
        return tuple(out)

    def kernel(self) -> KernelFacts:
        return KernelFacts(
            self._int(self.proc_sys / "user" / "max_user_namespaces"),
            self._int(self.proc_sys / "kernel" / "unprivileged_userns_clone"),
            self._int(self.proc_sys / "kernel" / "apparmor_restrict_unprivileged_userns"),
        )

    @staticmethod
    def _int(path: Path) -> Optional[int]:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def fuse(self, runtime_path: Optional[str]) -> FuseFacts:
        dev = self.fuse_device
        try:
            st = os.stat(dev)
        except OSError:
            exists, is_chr, mode = False, False, None
        else:
            exists, is_chr, mode = True, stat.S_ISCHR(st.st_mode), stat.S_IMODE(st.st_mode)
        usable = exists and os.access(dev, os.R_OK | os.W_OK)
        squash = self.which("squashfuse_ll") or self.which("squashfuse")
        if squash is None and runtime_path:
            squash = _libexec_tool(runtime_path, ("squashfuse_ll", "squashfuse"))
        return FuseFacts(
            dev,
            exists,
            is_chr,
            mode,
            usable,
            squash,
            self.which("fusermount3") or self.which("fusermount"),
        )

    # ---------------------------------------------------------------- directories

    def directory(self, role: str, path: Path, key: str, source: str) -> DirFacts:
        facts = DirFacts(role, str(path), key, source)
        created = False
        if not path.is_dir():
            try:
                path.mkdir(parents=True, mode=0o755)
                created = True
            except OSError as exc:
                return _replace(facts, error=exc.strerror or str(exc))
        mount = self.mount_of(path)
        try:
            vfs = os.statvfs(path)
            dev = os.stat(path).st_dev
        except OSError as exc:
            return _replace(facts, exists=True, error=exc.strerror or str(exc))
        excl, rename, error = _try_semantics(path)
        quota = self.quota(mount[1] if mount else None, mount[0] if mount else None)
        return DirFacts(
            role,
            str(path),
            key,
            source,
            exists=True,
            created=created,
            fstype=mount[2] if mount else None,
            mountpoint=mount[1] if mount else None,
            device=dev,
            free_bytes=vfs.f_bavail * vfs.f_frsize,
            total_bytes=vfs.f_blocks * vfs.f_frsize,
            excl_ok=excl,
            rename_ok=rename,
            error=error,
            quota=quota,
        )

    def mount_of(self, path: Path) -> Optional[tuple[str, str, str]]:
        """(source, mountpoint, fstype) of the mount holding ``path`` (longest prefix)."""
        real = os.path.realpath(path)
        best: Optional[tuple[str, str, str]] = None
        try:
            text = self.mounts.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            point = parts[1].replace("\\040", " ")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and (
                best is None or len(point) >= len(best[1])
            ):
                best = (parts[0], point, parts[2])
        return best

    def quota(self, mountpoint: Optional[str], source: Optional[str]) -> Optional[QuotaFacts]:
        user = self.environ.get("USER") or self.environ.get("LOGNAME") or ""
        if mountpoint is None or not user:
            return None
        if self.which("lfs"):
            done = self.run(["lfs", "quota", "-q", "-u", user, mountpoint])
            if done is not None and done.returncode == 0:
                return parse_lfs_quota(done.stdout)
        if self.which("quota") and source:
            done = self.run(["quota", "-w", "-p", "-v", "-u", user])
            if done is not None and done.returncode == 0:
                return parse_quota(done.stdout, source)
        return None

    # ---------------------------------------------------------------- job side

    def binds(self, job: Optional[JobSpec], cfg: Config) -> tuple[BindFacts, ...]:
        from hpcbridge.config.validate import bind_problem

        found = [(b, "site default") for b in cfg.binds.default]
        if job is not None:
            found += [(b, "job") for b in job.binds]
            if job.mpi.model == "bind" and job.mpi.host_mpi_dir:
                from hpcbridge.job.spec import Bind

                found.append((Bind(job.mpi.host_mpi_dir, job.mpi.host_mpi_dir, "ro"), "mpi"))
        return tuple(
            BindFacts(b.src, b.dst, b.per_task, origin, bind_problem(b.src, b.per_task, cfg))
            for b, origin in found
        )

    def slurm(self, cfg: Config, want_mpi: bool) -> SlurmFacts:
        from hpcbridge.scheduler import get_scheduler

        user = self.environ.get("USER") or self.environ.get("LOGNAME")
        try:
            limits = get_scheduler(cfg.scheduler.backend).limits(user)
        except HpcbridgeError as exc:
            return SlurmFacts(error=exc.message)
        plugins: Optional[tuple[str, ...]] = None
        error = ""
        if want_mpi:
            done = self.run(["srun", "--mpi=list"])
            if done is not None and done.returncode == 0:
                plugins = parse_mpi_list(done.stdout + done.stderr)
            else:
                error = "srun --mpi=list: " + (
                    (done.stderr.strip().splitlines() or ["failed"])[-1] if done else "not found"
                )
        return SlurmFacts(limits, plugins, error)

    def host_mpi(self) -> HostMpiFacts:
        path = self.which("mpirun")
        if path is None:
            return HostMpiFacts()
        done = self.run([path, "--version"])
        text = (done.stdout + done.stderr).strip() if done else ""
        return HostMpiFacts(path, text.splitlines()[0] if text else "")

    def gpu(self, vendor: Optional[str]) -> GpuHostFacts:
        wanted = GPU_LIBRARIES.get(vendor or "", ())
        libs: tuple[str, ...] = ()
        ldconfig = self.which("ldconfig") or "/sbin/ldconfig"
        if wanted and os.path.exists(ldconfig):
            done = self.run([ldconfig, "-p"])
            if done is not None:
                libs = tuple(lib for lib in wanted if lib in done.stdout)
        tools = tuple(t for t in ("nvidia-smi", "rocm-smi") if self.which(t))
        return GpuHostFacts(libs, tools)

    def image(self, job: JobSpec, cfg: Config, runtime_path: Optional[str]) -> ImageFacts:
        """The job's SIF if converted already (never downloads), and one real run of it."""
        from hpcbridge.doctor.image import MPI_PROBE
        from hpcbridge.images.convert import convert_with_config

        base = ImageFacts(job.image, runtime=cfg.runtime.executable or cfg.runtime.flavor)
        try:
            res = convert_with_config(job.image, cfg, offline=True)
        except HpcbridgeError as exc:
            return replace(base, error=exc.message)
        found = replace(base, sif=str(res.path), digest=res.digest)
        if runtime_path is None:
            return replace(found, exec_error="no runtime on PATH")
        start = time.monotonic()
        done = self.run([runtime_path, "exec", str(res.path), "/bin/sh", "-c", MPI_PROBE])
        took = time.monotonic() - start
        if done is None:
            return replace(found, exec_ok=False, exec_error="did not finish in time")
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["exit status " + str(done.returncode)])[-1]
            if "/bin/sh" in last and "no such file" in last.lower():
                return replace(found, exec_error="the image has no /bin/sh")
            return replace(found, exec_ok=False, exec_error=last.strip())
        libs = tuple(ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("/"))
        return replace(found, exec_ok=True, exec_seconds=took, mpi_libs=libs)


def parse_mpi_list(text: str) -> tuple[str, ...]:
    """Plugin names from ``srun --mpi=list`` (Slurm 20-26 formats), versioned pmix names
    (``specific pmix plugin versions available: pmix_v4,pmix_v5``) included."""
    names: list[str] = []
    for line in text.splitlines():
        s = line.strip().removeprefix("srun: ").strip()
        if s.lower().startswith("specific") and ":" in s:
            names += s.split(":", 1)[1].replace(",", " ").split()
        elif s and " " not in s and not s.lower().startswith(("mpi plugin types", "mpi types")):
            names.append(s)
    return tuple(dict.fromkeys(n.removeprefix("mpi/") for n in names))


def _replace(facts: DirFacts, **changes: object) -> DirFacts:
    return replace(facts, **changes)  # type: ignore[arg-type]


def _try_semantics(path: Path) -> tuple[Optional[bool], Optional[bool], str]:
    """Try O_EXCL and rename-over in a fresh subdirectory; (excl_ok, rename_ok, error)."""
    try:
        work = Path(tempfile.mkdtemp(prefix=".hpcbridge-doctor-", dir=path))
    except OSError as exc:
        return None, None, f"cannot create files here: {exc.strerror or exc}"
    try:
        lock = work / "lock"
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            excl = False
        except FileExistsError:
            excl = True
        a, b = work / "a", work / "b"
        a.write_bytes(b"new\n" * 1024)
        b.write_bytes(b"old\n")
        os.rename(a, b)
        rename = b.read_bytes() == b"new\n" * 1024 and not a.exists()
        return excl, rename, ""
    except OSError as exc:
        reason = (
            "the filesystem is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        )
        return None, None, f"cannot write here: {reason}"
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)


def _suid_starter(runtime_path: str, flavor: str) -> bool:
    real = Path(os.path.realpath(runtime_path))
    for name in (flavor, "apptainer", "singularity"):
        starter = real.parent.parent / "libexec" / name / "bin" / "starter-suid"
        try:
            if starter.stat().st_mode & stat.S_ISUID:
                return True
        except OSError:
            continue
    return False


def _libexec_tool(runtime_path: str, names: Sequence[str]) -> Optional[str]:
    real = Path(os.path.realpath(runtime_path))
    for base in ("apptainer", "singularity"):
        for name in names:
            candidate = real.parent.parent / "libexec" / base / "bin" / name
            if candidate.exists():
                return str(candidate)
    return None


def gather(
    cfg: Config, job: Optional[JobSpec], probe: Optional[Probe] = None, *, compute: bool = False
) -> Facts:
    """Collect every fact the checks need; ``compute``: run the zstd probe on a compute node too."""
    from hpcbridge.config.validate import effective_gpu_vendor
    from hpcbridge.doctor.zstd import gather_zstd

    p = probe or Probe()
    rt = p.runtime(cfg)
    dirs = (
        p.directory("cache", cfg.cache.dir, "cache.dir", cfg.source_of("cache.dir")),
        p.directory(
            "tmp",
            cfg.cache.effective_tmp_dir,
            "cache.tmp_dir",
            cfg.source_of("cache.tmp_dir") if cfg.cache.tmp_dir is not None else "cache.dir",
        ),
    )
    vendor: Optional[str] = None
    if job is not None:
        with contextlib.suppress(HpcbridgeError):
            vendor = effective_gpu_vendor(job, cfg)
    wants_mpi = job is not None and job.mpi.type == "srun"
    return Facts(
        runtime=rt,
        kernel=p.kernel(),
        fuse=p.fuse(rt.path),
        dirs=dirs,
        slurm=p.slurm(cfg, wants_mpi),
        mpi=p.host_mpi() if job is not None and job.mpi.type == "mpirun" else HostMpiFacts(),
        gpu=p.gpu(vendor) if vendor else GpuHostFacts(),
        binds=p.binds(job, cfg),
        image=p.image(job, cfg, rt.path) if job is not None else None,
        zstd=gather_zstd(cfg, rt.path, rt.version_output, compute=compute),
    )
