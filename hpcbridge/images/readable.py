"""Which squashfs compressions the site's runtime was proven to read: the probe record.

``hpcbridge doctor`` (login node) and ``hpcbridge doctor --compute`` (a compute
node, through ``srun``) run the probe of :mod:`hpcbridge.doctor.zstd`: a tiny
gzip SIF and a tiny zstd SIF made by hpcbridge, each exec'ed by the runtime.
The result is kept in ``<state.dir>/runtime-probes.json`` (default
``~/.local/state/hpcbridge/runtime-probes.json``), one entry per runtime::

    {
      "schema": 1,
      "runtimes": {
        "/usr/bin/apptainer|apptainer version 1.4.5": {
          "path": "/usr/bin/apptainer",            # as found on PATH (or as configured)
          "realpath": "/usr/bin/apptainer",
          "identity": [12345678, 1733500000000000000, 393219],   # size, mtime_ns, inode
          "version": "apptainer version 1.4.5",
          "places": {
            "login":   {"host": "login1", "gzip": true, "zstd": true,
                        "checked": 1733500000.0, "detail": ""},
            "compute": {"host": "n1", "gzip": true, "zstd": true,
                        "checked": 1733500060.0, "detail": "srun -N1 -n1 -p debug"}
          }
        }
      }
    }

An entry is found again by the runtime's resolved path and identity (size,
mtime, inode of the executable): upgrading or replacing the runtime makes the
old entry unused (run the doctor again).  ``identity`` is null when the runtime
is not installed on the login node (only the compute node could be probed).
``zstd`` is null when the gzip control failed too (the runtime ran nothing, so
the probe says nothing about zstd).

:func:`choose` turns the setting ``auto`` (``convert.compression``'s default)
into ``zstd`` when every probed place read zstd and a compute node was among
them, and into ``gzip`` otherwise; ``gzip``/``zstd``/... set in a
configuration file or on the command line are used as they are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hpcbridge.images.sif.compression import AUTO, DEFAULT_COMPRESSOR

log = logging.getLogger(__name__)

RECORD_NAME = "runtime-probes.json"
SCHEMA = 1
PLACES = ("login", "compute")


@dataclass(frozen=True)
class RuntimeId:
    """A runtime executable as this node sees it (``identity`` None: not installed here)."""

    path: str
    realpath: str
    identity: Optional[tuple[int, int, int]]


def runtime_id(exe: str) -> RuntimeId:
    """Resolve ``exe`` (a name on PATH or a path) and stat it."""
    found = shutil.which(exe) if os.sep not in exe else (exe if os.path.exists(exe) else None)
    if found is None:
        return RuntimeId(exe, exe, None)
    path = os.path.abspath(found)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return RuntimeId(path, real, None)
    return RuntimeId(path, real, (st.st_size, st.st_mtime_ns, st.st_ino))


def record_path(state_dir: Path) -> Path:
    return Path(state_dir) / RECORD_NAME


def load_record(state_dir: Path) -> dict[str, Any]:
    try:
        obj = json.loads(record_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"schema": SCHEMA, "runtimes": {}}
    if not isinstance(obj, dict) or not isinstance(obj.get("runtimes"), dict):
        return {"schema": SCHEMA, "runtimes": {}}
    return obj


def find_entry(record: dict[str, Any], rid: RuntimeId) -> Optional[dict[str, Any]]:
    """The entry of this runtime (same resolved path and identity), the newest if several."""
    best: Optional[dict[str, Any]] = None
    for entry in record.get("runtimes", {}).values():
        if not isinstance(entry, dict) or entry.get("realpath") != rid.realpath:
            continue
        ident = entry.get("identity")
        if (tuple(ident) if isinstance(ident, list) else ident) != rid.identity:
            continue
        if best is None or _newest(entry) > _newest(best):
            best = entry
    return best


def _newest(entry: dict[str, Any]) -> float:
    places = entry.get("places") or {}
    return max((float(p.get("checked") or 0) for p in places.values()), default=0.0)


def save_place(
    state_dir: Path,
    rid: RuntimeId,
    version: str,
    place: str,
    result: dict[str, Any],
) -> Path:
    """Record ``result`` (host, gzip, zstd, detail) of one place for this runtime."""
    from hpcbridge.fsutil import atomic_write_text, ensure_dir

    if place not in PLACES:
        raise ValueError(f"unknown probe place {place!r}")
    record = load_record(state_dir)
    key = f"{rid.path}|{version}"
    entry = record["runtimes"].setdefault(key, {})
    if entry.get("identity") not in (None, list(rid.identity or ())) or entry.get(
        "realpath"
    ) not in (None, rid.realpath):
        entry.clear()  # the same path and version, but another file: start over
    entry.update(
        {
            "path": rid.path,
            "realpath": rid.realpath,
            "identity": list(rid.identity) if rid.identity else None,
            "version": version,
        }
    )
    entry.setdefault("places", {})[place] = {"checked": time.time(), **result}
    record["schema"] = SCHEMA
    ensure_dir(state_dir, 0o700)
    path = record_path(state_dir)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n", 0o644)
    return path


def zstd_verdict(entry: Optional[dict[str, Any]]) -> Optional[bool]:
    """True: every probed place read zstd and a compute node was one; False: a place could
    not (while it ran gzip); None: not known (no compute probe, or nothing ran at all)."""
    if not entry:
        return None
    places = entry.get("places") or {}
    said = {name: p.get("zstd") for name, p in places.items() if isinstance(p, dict)}
    if any(v is False for v in said.values()):
        return False
    if said.get("compute") is not True:
        return None
    if entry.get("identity") is not None and said.get("login") is not True:
        return None  # installed on the login node but not probed there
    return True


def zstd_readable(exe: str, state_dir: Optional[Path]) -> Optional[bool]:
    """:func:`zstd_verdict` of runtime ``exe`` from the record in ``state_dir``."""
    if state_dir is None:
        return None
    return zstd_verdict(find_entry(load_record(Path(state_dir)), runtime_id(exe)))


def choose(setting: str, exe: str, state_dir: Optional[Path]) -> str:
    """The compressor for ``setting``: ``auto`` -> zstd if proven readable, else gzip."""
    if setting != AUTO:
        if setting == "zstd" and zstd_readable(exe, state_dir) is False:
            log.warning(
                "zstd was asked for, but %s could not read a zstd SIF when probed "
                "(hpcbridge doctor); the SIF may not run",
                exe,
            )
        return setting
    return "zstd" if zstd_readable(exe, state_dir) else DEFAULT_COMPRESSOR
