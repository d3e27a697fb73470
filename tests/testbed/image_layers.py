"""Layer building for the testbed images, without Docker: root filesystems made with
debootstrap/apt in a chroot, and deterministic gzip'd tar layers written with tarfile
(sorted names, fixed mtime, numeric owners, no user/group names, gzip mtime 0).

Used by tests/testbed/images.py; the recipes are in tests/testbed/recipes/.
"""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# 2024-01-01T00:00:00Z: the mtime of every entry in every layer
MTIME = 1704067200
GZIP_LEVEL = 6
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

# directories whose content never goes into a layer (the runtime mounts its own)
SKIP_CONTENT = {"dev", "proc", "sys"}
# files never put into a layer (host-specific leftovers of debootstrap/apt)
SKIP_FILES = {"etc/resolv.conf", "etc/hostname"}


@dataclass(frozen=True)
class LayerBlob:
    digest: str  # sha256:<hex> of the gzip'd blob
    diff_id: str  # sha256:<hex> of the uncompressed tar
    size: int
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "diff_id": self.diff_id,
            "size": self.size,
            "created_by": self.created_by,
        }


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: BinaryIO | gzip.GzipFile) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def write_layer(
    blobs_dir: Path, fill: Callable[[tarfile.TarFile], None], created_by: str
) -> LayerBlob:
    """Write a gzip'd tar layer filled by `fill` into blobs_dir/sha256/<hex>."""
    out_dir = blobs_dir / "sha256"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".tmp-{os.getpid()}"
    with open(tmp, "wb") as raw:
        outer = _HashingWriter(raw)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, compresslevel=GZIP_LEVEL, mtime=0)
        inner = _HashingWriter(gz)
        with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            fill(tar)
        gz.close()
    hexd = outer.sha.hexdigest()
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_dir / hexd)
    return LayerBlob("sha256:" + hexd, "sha256:" + inner.sha.hexdigest(), outer.size, created_by)


def _normalise(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime = MTIME
    ti.uname = ""
    ti.gname = ""
    ti.pax_headers = {}
    return ti


def add_path(tar: tarfile.TarFile, root: Path, rel: str) -> None:
    """Add root/rel to the layer as `rel` (hard links within the layer kept as links)."""
    full = os.path.join(root, rel)
    ti = tar.gettarinfo(full, arcname=rel)
    if ti is None:  # socket
        return
    _normalise(ti)
    if ti.isreg():
        with open(full, "rb") as f:
            tar.addfile(ti, f)
    else:
        tar.addfile(ti)


def add_dir(tar: tarfile.TarFile, rel: str, mode: int = 0o755) -> None:
    ti = tarfile.TarInfo(rel)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    tar.addfile(_normalise(ti))


def add_file(tar: tarfile.TarFile, rel: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(rel)
    ti.size = len(data)
    ti.mode = mode
    tar.addfile(_normalise(ti), io.BytesIO(data))


def add_symlink(tar: tarfile.TarFile, rel: str, target: str) -> None:
    ti = tarfile.TarInfo(rel)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    ti.mode = 0o777
    tar.addfile(_normalise(ti))


def add_hardlink(tar: tarfile.TarFile, rel: str, target: str) -> None:
    ti = tarfile.TarInfo(rel)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    ti.mode = 0o644
    tar.addfile(_normalise(ti))


def walk(root: Path, rel: str = "") -> Iterator[str]:
    """Every path under root (relative, sorted, parents before children), skipping the
    content of SKIP_CONTENT and the SKIP_FILES."""
    base = os.path.join(root, rel) if rel else str(root)
    for name in sorted(os.listdir(base)):
        sub = f"{rel}/{name}" if rel else name
        if sub in SKIP_FILES:
            continue
        yield sub
        full = os.path.join(base, name)
        if sub not in SKIP_CONTENT and stat.S_ISDIR(os.lstat(full).st_mode):
            yield from walk(root, sub)


def _ancestors(rel: str) -> Iterator[str]:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def full_layer(root: Path) -> Callable[[tarfile.TarFile], None]:
    def fill(tar: tarfile.TarFile) -> None:
        for rel in walk(root):
            add_path(tar, root, rel)

    return fill


def _differs(lower: Path, upper: Path, rel: str) -> bool:
    try:
        a = os.lstat(os.path.join(lower, rel))
    except FileNotFoundError:
        return True
    b = os.lstat(os.path.join(upper, rel))
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return True
    if stat.S_ISLNK(b.st_mode):
        return os.readlink(os.path.join(lower, rel)) != os.readlink(os.path.join(upper, rel))
    if stat.S_ISREG(b.st_mode):
        if a.st_size != b.st_size:
            return True
        if a.st_mtime_ns == b.st_mtime_ns:
            return False
        return not filecmp.cmp(os.path.join(lower, rel), os.path.join(upper, rel), shallow=False)
    return False


def diff_layer(lower: Path, upper: Path) -> Callable[[tarfile.TarFile], None]:
    """A layer turning `lower` into `upper`: new/changed entries (with their parent
    directories) and `.wh.<name>` whiteouts for the topmost removed paths."""

    def fill(tar: tarfile.TarFile) -> None:
        upper_paths = list(walk(upper))
        upper_set = set(upper_paths)
        wanted = {rel for rel in upper_paths if _differs(lower, upper, rel)}
        whiteouts: dict[str, str] = {}
        for rel in walk(lower):
            parent = rel.rpartition("/")[0]
            # only the topmost removed path: a removed directory's content goes with it
            if rel not in upper_set and (parent == "" or parent in upper_set):
                head, _, name = rel.rpartition("/")
                whiteouts[(head + "/" if head else "") + ".wh." + name] = rel
        for rel in list(wanted) + list(whiteouts):
            wanted.update(_ancestors(rel))
        for rel in sorted(wanted | set(whiteouts)):
            if rel in whiteouts:
                add_file(tar, rel, b"", 0o644)
            else:
                add_path(tar, upper, rel)

    return fill


def run_logged(argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed (exit {proc.returncode}); see {log}")


def clean_rootfs(root: Path) -> None:
    """Drop what Dockerfiles drop: apt lists and caches, logs, host files."""
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
        "var/cache/ldconfig/aux-cache",
        "etc/resolv.conf",
        "etc/hostname",
    ):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                if p.name != "partial":
                    shutil.rmtree(p)
            else:
                p.unlink()


def chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "HOME": "/root",
    }


def host_package_version(pkg: str) -> str | None:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def installed_versions(root: Path, packages: list[str]) -> dict[str, str]:
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for para in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in para.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") in packages and "installed" in fields.get("Status", ""):
            out[fields["Package"]] = fields.get("Version", "")
    return out
