"""The SIF cache: one SIF per manifest digest, shared safely between processes and hosts.

Layout under the cache root::

    sif/<hex>.sif          the image, published by atomic rename (mode 0755)
    sif/<hex>.json         its record; the record's mtime is the "last used" time
    sif/.<hex>.*.part      a SIF being written (invisible to readers; swept when orphaned)
    blobs/sha256/<hex>     verified registry blobs (a download cache)
    blobs/sha256/.<hex>.partial[.json]   an interrupted download, resumed by the next one
                           (fetch/download.py; swept when unlocked and two days old)
    refs/<key>.json        tag -> digest resolutions (for --offline and index -> manifest)
    locks/<hex>.lock       conversion locks (see lock.py)
    tmp/                   default scratch space for root filesystems

Temporary names carry host and pid (``<name>.<host>.<pid>.<rand>.part``) so that
leftovers of killed processes can be recognised and removed.  What ``images
prune`` removes is chosen by :mod:`hpcbridge.images.prune`.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import ImageError

if TYPE_CHECKING:  # lock.py and fsutil are imported where needed: a warm lookup needs neither
    from hpcbridge.images.lock import FileLock

log = logging.getLogger(__name__)

FOREIGN_TMP_AGE = 2 * 86400.0  # leftovers of other hosts are removed after two days


@dataclass(frozen=True)
class Entry:
    digest: str
    path: Path
    size: int
    last_used: float
    record: dict[str, Any]

    @property
    def created(self) -> float:
        return float(self.record.get("created", 0.0))


def hex_of(digest: str) -> str:
    algo, _, value = digest.partition(":")
    if algo != "sha256" or len(value) != 64:
        raise ImageError(f"invalid digest {digest!r}", "expected sha256:<64 hex digits>")
    return value


def temp_name(base: str) -> str:
    from hpcbridge.images.lock import HOST

    return f".{base}.{HOST}.{os.getpid()}.{os.urandom(4).hex()}.part"


def _temp_owner(name: str) -> Optional[tuple[str, int]]:
    """(host, pid) encoded in a temp name, or None if it is not one of ours."""
    if not name.endswith(".part"):
        return None
    parts = name[: -len(".part")].split(".")
    if len(parts) < 4 or not parts[-2].isdigit():
        return None
    return parts[-3], int(parts[-2])


def key_sha256(key: str) -> str:
    """sha256 of a short key (a resolution's file name), with CPython's own sha256 when it
    has one: hashlib loads OpenSSL, milliseconds of the warm path; the digest is the same."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return str(sha256(key.encode()).hexdigest())


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Cache:
    def __init__(
        self,
        root: Path,
        *,
        tmp_dir: Optional[Path] = None,
        shared: bool = False,
        group: str = "",
    ) -> None:
        self.root = Path(root).expanduser()
        self.tmp_dir = Path(tmp_dir).expanduser() if tmp_dir else self.root / "tmp"
        self.shared = shared
        self.group = group
        self.sif_dir = self.root / "sif"
        self.blob_dir = self.root / "blobs" / "sha256"
        self.refs_dir = self.root / "refs"
        self.locks_dir = self.root / "locks"
        self.file_mode = 0o664 if shared else 0o644
        self.dir_mode = 0o2775 if shared else 0o755

    # --- paths -----------------------------------------------------------------------------

    def sif_path(self, digest: str) -> Path:
        return self.sif_dir / f"{hex_of(digest)}.sif"

    def record_path(self, digest: str) -> Path:
        return self.sif_dir / f"{hex_of(digest)}.json"

    def lock(self, digest: str, **kwargs: Any) -> FileLock:
        from hpcbridge.images.lock import FileLock

        return FileLock(self.locks_dir / f"{hex_of(digest)}.lock", mode=self.file_mode, **kwargs)

    def ensure(self) -> None:
        """Create the directories (group-shared: setgid, group-writable, chgrp)."""
        gid = -1
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ImageError(
                    f"cache group {self.group!r} does not exist", "fix cache.group in the config"
                ) from None
        for d in (
            self.root,
            self.sif_dir,
            self.blob_dir.parent,
            self.blob_dir,
            self.refs_dir,
            self.locks_dir,
            self.tmp_dir,
        ):
            if d.is_dir():
                continue
            try:
                d.mkdir(parents=True, exist_ok=True)
                if self.shared or gid >= 0:
                    if gid >= 0:
                        os.chown(d, -1, gid)
                    os.chmod(d, self.dir_mode)
            except OSError as exc:
                raise ImageError(
                    f"cannot create cache directory {d}: {exc.strerror}",
                    "set cache.dir (or cache.tmp_dir) to a writable directory",
                ) from exc

    def publish_mode(self, path: Path, mode: int) -> None:
        with contextlib.suppress(OSError):
            os.chmod(path, mode | (0o040 if self.shared else 0))

    # --- lookups (the warm path: a stat and a utime) -----------------------------------------

    def lookup(self, digest: str, *, touch: bool = True) -> Optional[Path]:
        path = self.sif_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if st.st_size == 0:
            return None
        if touch:
            with contextlib.suppress(OSError):
                os.utime(self.record_path(digest))
        return path

    def read_record(self, digest: str) -> dict[str, Any]:
        try:
            obj = json.loads(self.record_path(digest).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return obj if isinstance(obj, dict) else {}

    def write_record(self, digest: str, record: dict[str, Any]) -> None:
        from hpcbridge.fsutil import atomic_write_text

        atomic_write_text(
            self.record_path(digest),
            json.dumps(record, indent=2, sort_keys=True) + "\n",
            self.file_mode,
        )

    def ensure_record(self, digest: str, **fields: Any) -> dict[str, Any]:
        """The record of a published SIF; rebuilt (hashing the SIF) if it is missing."""
        record = self.read_record(digest)
        path = self.sif_path(digest)
        if not record.get("sif_sha256"):
            st = path.stat()
            record = {
                "digest": digest,
                "sif": path.name,
                "size": st.st_size,
                "sif_sha256": file_sha256(path),
                "created": st.st_mtime,
                "refs": [],
                **fields,
            }
        ref = fields.get("source_ref")
        try:
            if ref and ref not in record.setdefault("refs", []):
                record["refs"].append(ref)
                record["refs"] = record["refs"][-20:]
                self.write_record(digest, record)
            elif not self.record_path(digest).exists():
                self.write_record(digest, record)
        except OSError as exc:  # e.g. a cache shared read-only: using it is still fine
            log.debug("cannot update the record of %s: %s", digest, exc)
        return record

    # --- tag resolutions ------------------------------------------------------------------

    def _ref_path(self, key: str) -> Path:
        return self.refs_dir / (key_sha256(key)[:40] + ".json")

    def save_resolution(self, key: str, digest: str, **extra: Any) -> None:
        body = {"key": key, "digest": digest, "resolved": time.time(), **extra}
        from hpcbridge.fsutil import atomic_write_text

        try:
            atomic_write_text(
                self._ref_path(key), json.dumps(body, sort_keys=True) + "\n", self.file_mode
            )
        except OSError as exc:
            log.debug("cannot record resolution of %s: %s", key, exc)

    def load_resolution(self, key: str) -> Optional[dict[str, Any]]:
        try:
            obj = json.loads(self._ref_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(obj, dict)
            or obj.get("key") != key
            or not isinstance(obj.get("digest"), str)
        ):
            return None
        return obj

    # --- listing and pruning ------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        if not self.sif_dir.is_dir():
            return out
        for path in sorted(self.sif_dir.glob("*.sif")):
            if path.name.startswith("."):
                continue
            digest = "sha256:" + path.stem
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            record = self.read_record(digest)
            try:
                used = self.record_path(digest).stat().st_mtime
            except FileNotFoundError:
                used = st.st_mtime
            out.append(Entry(digest, path, st.st_size, used, record))
        return out

    def blob_entries(self) -> list[tuple[Path, int, float]]:
        if not self.blob_dir.is_dir():
            return []
        out = []
        for path in self.blob_dir.iterdir():
            if path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                out.append((path, st.st_size, st.st_mtime))
        return out

    def remove_entry(self, entry: Entry) -> bool:
        """Delete a SIF and its record unless a conversion of it holds the lock."""
        lock = self.lock(entry.digest, heartbeat=0)
        lock.break_if_stale()
        if not lock.try_acquire():
            return False
        try:
            for p in (entry.path, self.record_path(entry.digest)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        finally:
            lock.release()
        return True

    # --- temporary files ------------------------------------------------------------------

    def sweep(self, now: Optional[float] = None) -> list[Path]:
        """Remove temp files and dirs left by dead processes (and old foreign ones)."""
        from hpcbridge.images.lock import HOST, FileLock, pid_alive

        now = time.time() if now is None else now
        removed: list[Path] = []
        for d in (self.sif_dir, self.blob_dir, self.tmp_dir, self.refs_dir):
            if not d.is_dir():
                continue
            for path in d.iterdir():
                owner = _temp_owner(path.name)
                if owner is None:
                    continue
                host, pid = owner
                try:
                    age = now - path.lstat().st_mtime
                except FileNotFoundError:
                    continue
                if (host == HOST and not pid_alive(pid)) or (
                    host != HOST and age > FOREIGN_TMP_AGE
                ):
                    if path.is_dir() and not path.is_symlink():
                        import shutil

                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                    removed.append(path)
        removed += self._sweep_partials(now)
        if self.locks_dir.is_dir():
            for path in self.locks_dir.glob("*.lock"):
                with contextlib.suppress(OSError):
                    if FileLock(path, heartbeat=0).break_if_stale():
                        removed.append(path)
        if removed:
            log.info("removed %d leftovers of interrupted conversions", len(removed))
        return removed

    def _sweep_partials(self, now: float) -> list[Path]:
        """Interrupted downloads nobody resumed for two days (and nobody holds)."""
        import fcntl

        removed: list[Path] = []
        if not self.blob_dir.is_dir():
            return removed
        for path in self.blob_dir.glob(".*.partial"):
            try:
                if now - path.stat().st_mtime <= FOREIGN_TMP_AGE:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # being resumed right now
            else:
                for p in (path, path.with_name(path.name + ".json")):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                removed.append(path)
            finally:
                os.close(fd)
        return removed


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
