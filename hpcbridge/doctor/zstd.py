"""The zstd probe: does the site's runtime read zstd-compressed SIFs, here and on a compute node?

Two tiny SIFs are made by hpcbridge's own converter (the native backend, the
same code that converts images), identical but for the squashfs compressor:
gzip (the control) and zstd.  Each holds one static program,
``/hpcbridge-probe`` (:mod:`hpcbridge.images.sif.elf`), that prints a marker: no
shell or libc is needed, only the runtime reading the squashfs.  They are kept
in ``<cache.dir>/probe/`` (compute nodes read them from there, so the cache must
be on a shared filesystem, as it is for jobs).

* login node: ``<runtime> exec <sif> /hpcbridge-probe`` for each SIF;
* compute node (``doctor --compute``): one ``srun --nodes=1 --ntasks=1 --time=5``
  step (in the site's default partition, if the configuration names one) running
  both execs through ``/bin/sh`` with the runtime as jobs call it (``runtime.executable``,
  after ``module load`` of ``runtime.modules``).

Results go to the probe record (:mod:`hpcbridge.images.readable`), which
``convert.compression = "auto"`` reads.  A setuid Apptainer mounts the squashfs
with the kernel (zstd only where the kernel has it); a rootless one uses
squashfuse (zstd only where squashfuse was built with it): only running it tells.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hpcbridge import runner
from hpcbridge.config import Config
from hpcbridge.doctor.readable import PlaceProbe, ZstdFacts
from hpcbridge.errors import CommandError, HpcbridgeError
from hpcbridge.images.sif.elf import MARKER, executable
from hpcbridge.images.sif.elf import supported as elf_supported

PROGRAM = "/hpcbridge-probe"
COMPRESSIONS = ("gzip", "zstd")
#: Run on the compute node: $1 runtime, $2 number of modules, the modules, then the SIFs.
COMPUTE_SCRIPT = """rt=$1; n=$2; shift 2
if [ "$n" -gt 0 ]; then
  mods=""; i=0
  while [ "$i" -lt "$n" ]; do mods="$mods $1"; shift; i=$((i + 1)); done
  module load $mods >/dev/null 2>&1 || echo "| module load$mods failed"
fi
echo "host=$(hostname)"
for sif in "$@"; do
  out=$("$rt" exec "$sif" /hpcbridge-probe 2>&1); rc=$?
  echo "probe=$sif rc=$rc"
  printf '%s\\n' "$out" | tail -n 2 | sed 's/^/| /'
done
"""


@dataclass
class _TarLayer:
    """The probe image's one layer, in memory (the Layer protocol)."""

    data: bytes
    digest: str = ""
    media_type: str = "application/vnd.oci.image.layer.v1.tar"
    size: int = 0

    def __post_init__(self) -> None:
        import hashlib

        self.digest = "sha256:" + hashlib.sha256(self.data).hexdigest()
        self.size = len(self.data)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)


def _layer(program: bytes) -> _TarLayer:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo(PROGRAM.lstrip("/"))
        ti.size, ti.mode, ti.mtime = len(program), 0o755, 1704067200
        tf.addfile(ti, io.BytesIO(program))
    return _TarLayer(buf.getvalue())


def probe_sifs(cache_dir: Path, machine: str) -> dict[str, Path]:
    """The gzip and zstd probe SIFs for ``machine`` under ``<cache_dir>/probe`` (made once)."""
    from hpcbridge.images.cache import temp_name
    from hpcbridge.images.sif.native import build_sif

    program = executable(machine)
    if program is None:
        raise HpcbridgeError(f"the zstd probe has no program for {machine} machines")
    out_dir = Path(cache_dir) / "probe"
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    layer = _layer(program)
    config = {"architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z"}
    sifs: dict[str, Path] = {}
    for comp in COMPRESSIONS:
        sif = out_dir / f"probe-{arch}-{comp}-{layer.digest[7:19]}.sif"
        if not sif.is_file():
            part = out_dir / temp_name(sif.name)
            work = out_dir / temp_name("work")
            work.mkdir()
            try:
                build_sif(
                    [layer],
                    config,
                    manifest_digest=layer.digest,
                    source_ref=f"hpcbridge-probe-{comp}",
                    out=part,
                    workdir=work,
                    compression=comp,
                    processors=1,
                    mem_mib=64,
                )
                os.replace(part, sif)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                with contextlib.suppress(OSError):
                    work.rmdir()
        sifs[comp] = sif
    return sifs


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def run_login(runtime_path: str, sifs: dict[str, Path], timeout: float) -> PlaceProbe:
    """Exec both probe SIFs here."""
    said: dict[str, bool] = {}
    detail = ""
    for comp, sif in sifs.items():
        try:
            done = runner.run(
                [runtime_path, "exec", str(sif), PROGRAM], check=False, timeout=timeout
            )
        except CommandError as exc:
            said[comp], detail = False, exc.message
            continue
        said[comp] = done.returncode == 0 and MARKER.decode().strip() in done.stdout
        if not said[comp]:
            detail = _last_line(done.stderr or done.stdout)
    gzip = said.get("gzip", False)
    return PlaceProbe(
        "login", socket.gethostname(), gzip, said.get("zstd") if gzip else None, detail
    )


def compute_argv(cfg: Config, sifs: dict[str, Path]) -> list[str]:
    """The ``srun`` that runs both probes on one compute node (pure)."""
    argv = ["srun", "--nodes=1", "--ntasks=1", "--time=5", "--job-name=hpcbridge-probe"]
    part = cfg.default_partition
    if part is not None:
        argv.append(f"--partition={part.name}")
    runtime = cfg.runtime.executable or cfg.runtime.flavor
    modules = list(cfg.runtime.modules)
    argv += ["/bin/sh", "-c", COMPUTE_SCRIPT, "hpcbridge-probe", runtime, str(len(modules))]
    return argv + modules + [str(sifs[c]) for c in COMPRESSIONS]


def parse_compute(text: str, sifs: dict[str, Path]) -> PlaceProbe:
    """A :class:`PlaceProbe` from the output of :data:`COMPUTE_SCRIPT` (pure)."""
    host, current = "", ""
    said: dict[str, bool] = {}
    details: dict[str, list[str]] = {}
    by_path = {str(p): c for c, p in sifs.items()}
    for line in text.splitlines():
        if line.startswith("host="):
            host = line[5:].strip()
        elif line.startswith("probe="):
            path, _, rc = line[6:].rpartition(" rc=")
            current = by_path.get(path, "")
            if current:
                said[current] = rc.strip() == "0"
                details[current] = []
        elif line.startswith("| ") and current:
            details[current].append(line[2:])
    for comp in said:
        said[comp] = said[comp] and any(MARKER.decode().strip() in d for d in details[comp])
    if "gzip" not in said:
        return PlaceProbe("compute", host, None, None, _last_line(text))
    bad = next((c for c in COMPRESSIONS if not said.get(c)), "")
    detail = _last_line("\n".join(details.get(bad, []))) if bad else ""
    return PlaceProbe(
        "compute", host, said["gzip"], said.get("zstd") if said["gzip"] else None, detail
    )


def run_compute(cfg: Config, sifs: dict[str, Path], timeout: float) -> PlaceProbe:
    argv = compute_argv(cfg, sifs)
    try:
        done = runner.run(argv, check=False, timeout=timeout)
    except CommandError as exc:
        return PlaceProbe("compute", detail=f"srun: {exc.message}")
    found = parse_compute(done.stdout, sifs)
    if found.gzip is None:
        why = _last_line(done.stderr or done.stdout)
        return PlaceProbe("compute", found.host, detail=f"srun exit {done.returncode}: {why}")
    return found


def gather_zstd(
    cfg: Config,
    runtime_path: Optional[str],
    version: str,
    *,
    compute: bool,
    timeout: float = 60.0,
    compute_timeout: float = 600.0,
) -> ZstdFacts:
    """Run the probe (login; compute too with ``compute``), record it, say what conversion uses."""
    from hpcbridge.images.readable import (
        find_entry,
        load_record,
        runtime_id,
        save_place,
        zstd_verdict,
    )

    exe = cfg.runtime.executable or cfg.runtime.flavor
    rid = runtime_id(runtime_path or exe)
    shown = runtime_path or exe
    places: list[PlaceProbe] = []
    if not elf_supported(platform.machine()):
        note = (
            f"no zstd probe program for {platform.machine()} machines: conversions use gzip "
            '(convert.compression = "zstd" forces zstd)'
        )
        return ZstdFacts(shown, (), None, "", compute, cfg.convert.compression, note)
    try:
        sifs = probe_sifs(cfg.cache.dir, platform.machine())
    except (HpcbridgeError, OSError) as exc:
        why = exc.message if isinstance(exc, HpcbridgeError) else str(exc)
        places.append(PlaceProbe("login", detail=f"cannot make the probe images: {why}"))
        return ZstdFacts(shown, tuple(places), None, "", compute, cfg.convert.compression)
    if runtime_path:
        places.append(run_login(runtime_path, sifs, timeout))
    if compute:
        places.append(run_compute(cfg, sifs, compute_timeout))
    record = ""
    for p in places:
        if p.gzip is not None:
            result = {"host": p.host, "gzip": p.gzip, "zstd": p.zstd, "detail": p.detail}
            with contextlib.suppress(OSError):  # an unwritable state dir: reported as no record
                record = str(save_place(cfg.state.dir, rid, version or "unknown", p.place, result))
    verdict = zstd_verdict(find_entry(load_record(cfg.state.dir), rid))
    return ZstdFacts(shown, tuple(places), verdict, record, compute, cfg.convert.compression)
