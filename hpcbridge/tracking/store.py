"""The per-user state store: one directory per submission, one record file each.

Layout (``<state>`` is ``cfg.state.dir``, default ``$XDG_STATE_HOME/hpcbridge``,
mode 0700)::

    <state>/submissions/<id>/record.json   the record (atomic temp + rename)
    <state>/submissions/<id>/job.toml      the job file as submitted
    <state>/submissions/<id>/job-<n>.sh    the rendered script of chunk n
    <state>/submissions/<id>/<files>       extra files the render asked for
    <state>/submissions/<id>/outcomes/     <task>.start / <task>.end, written by the tasks
    <state>/submissions/<id>/logs/         Slurm stdout/stderr of the tasks
    <state>/cache/                         the shared poll cache and cluster limits

There is no shared index: listing ``submissions/`` is the index, so two
processes (or two login nodes sharing an NFS home) each create their own
directory (``mkdir`` is atomic) and never write the same file, except for
read-modify-write of one record (``update``), which holds that record's lock.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

from hpcbridge.errors import StateError
from hpcbridge.fsutil import atomic_write_text
from hpcbridge.tracking.locking import locked
from hpcbridge.tracking.record import Record, record_from_dict, record_to_dict

log = logging.getLogger(__name__)

RECORD = "record.json"


def new_id(now: float | None = None) -> str:
    """A sortable id unique across hosts: ``YYYYmmdd-HHMMSS-<6 random hex>`` (UTC)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stamp_host(record: Record) -> None:
    """Note this host and process in ``record`` (a pending record of a dead process is stale)."""
    record.host, record.pid = socket.gethostname(), os.getpid()


class Store:
    """Submission records under one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.submissions = self.root / "submissions"
        self.cache = self.root / "cache"

    def ensure(self) -> None:
        """Create the state directory (0700) and its sub-directories."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.root.stat().st_mode & 0o077:
                os.chmod(self.root, 0o700)
            self.submissions.mkdir(exist_ok=True, mode=0o700)
            self.cache.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory {self.root}: {exc.strerror}",
                "set state.dir (or HPCBRIDGE_STATE_DIR) to a writable directory",
            ) from None

    # ------------------------------------------------------------- one submission

    def path(self, sub_id: str) -> Path:
        return self.submissions / sub_id

    def create(self, record: Record, *, save: bool = True) -> Path:
        """Make ``<id>/`` (fails if it exists) with ``outcomes/``, ``logs/`` and the record
        (``save=False``: the caller saves it once the other files are written)."""
        self.ensure()
        d = self.path(record.id)
        d.mkdir(mode=0o700)  # atomic: two processes never share a directory
        (d / "outcomes").mkdir(mode=0o700)
        (d / "logs").mkdir(mode=0o700)
        if save:
            self.save(record)
        return d

    def new_submission(self, record: Record, *, save: bool = True) -> Path:
        """Create a directory under a fresh id (retrying on the rare collision)."""
        for _ in range(20):
            record.id = new_id()
            try:
                return self.create(record, save=save)
            except FileExistsError:
                continue
        raise StateError(f"could not allocate a submission id under {self.submissions}")

    def save(self, record: Record) -> None:
        text = json.dumps(record_to_dict(record), indent=1, sort_keys=True) + "\n"
        atomic_write_text(self.path(record.id) / RECORD, text, mode=0o600)

    def write_file(
        self, sub_id: str, name: str, text: str, mode: int = 0o600, *, sync: bool = True
    ) -> Path:
        """Write a file next to the record (temp + rename; ``sync=False`` skips the
        fsync, for files written before the record that commits them)."""
        if "/" in name or name.startswith(".") or name in (RECORD, "outcomes", "logs"):
            raise StateError(f"refusing to write {name!r} into a submission directory")
        p = self.path(sub_id) / name
        if sync:
            atomic_write_text(p, text, mode=mode)
        else:
            tmp = p.with_name(f".{name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(tmp, p)
        return p

    def load(self, sub_id: str) -> Record:
        p = self.path(sub_id) / RECORD
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(
                f"no submission {sub_id!r} in {self.submissions}",
                "see `hpcbridge list` for the ids",
            ) from None
        except (OSError, ValueError) as exc:
            raise StateError(f"the record {p} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("id") != sub_id:
            raise StateError(f"the record {p} is not a submission record")
        return record_from_dict(data)

    def update(self, sub_id: str, change: Callable[[Record], None]) -> Record:
        """Read-modify-write one record under its lock; returns the new record."""
        with locked(self.path(sub_id) / ".lock"):
            record = self.load(sub_id)
            change(record)
            self.save(record)
            return record

    def remove(self, sub_id: str) -> None:
        """Delete a submission directory (only used for one that never reached Slurm)."""
        import shutil

        shutil.rmtree(self.path(sub_id), ignore_errors=True)

    # ------------------------------------------------------------- all of them

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.submissions)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def records(self) -> Iterator[Record]:
        """Every readable record, oldest first; unreadable ones are skipped with a warning."""
        for sub_id in self.ids():
            try:
                yield self.load(sub_id)
            except StateError as exc:
                log.warning("%s", exc)

    def resolve(self, ref: str) -> str:
        """A full id from an id, a unique prefix or the random suffix; ``last`` = newest."""
        ids = self.ids()
        if ref in ids:
            return ref
        if ref in ("last", "-1") and ids:
            return ids[-1]
        # a prefix of the id, or of its random part (``457c`` for ``20261206-153257-457c44``)
        hits = [i for i in ids if i.startswith(ref) or i.rsplit("-", 1)[-1].startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise StateError(
                f"no submission {ref!r} in {self.submissions}", "see `hpcbridge list` for the ids"
            )
        raise StateError(
            f"{ref!r} matches {len(hits)} submissions", "give more characters of the id"
        )
