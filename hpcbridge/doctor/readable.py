"""What the zstd probe found, and the findings it gives (pure).

The probe (:mod:`hpcbridge.doctor.zstd`) runs a tiny gzip SIF and a tiny zstd
SIF made by hpcbridge with the site's runtime, on this login node and, with
``doctor --compute``, on a compute node through ``srun``.  The gzip SIF is the
control: a runtime that cannot run it says nothing about zstd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hpcbridge.doctor.findings import Finding, ok, warn

CHECK = "zstd"


@dataclass(frozen=True)
class PlaceProbe:
    place: str  # login | compute
    host: str = ""
    gzip: Optional[bool] = None  # None: not run
    zstd: Optional[bool] = None  # None: not run, or the gzip control failed
    detail: str = ""  # why it did not run, or the runtime's last line of error


@dataclass(frozen=True)
class ZstdFacts:
    runtime: str  # the runtime as resolved on the login node (or as configured)
    places: tuple[PlaceProbe, ...]
    verdict: Optional[bool]  # True: conversions use zstd by default (see images/readable.py)
    record: str = ""  # the probe record written ("" when none)
    compute_asked: bool = False
    setting: str = "auto"  # convert.compression
    note: str = ""  # why nothing was probed, when that is no fault (an unsupported machine)


def _place(p: PlaceProbe, runtime: str) -> Finding:
    where = "this login node" if p.place == "login" else f"compute node {p.host or '?'}"
    if p.gzip is None:
        return warn(
            CHECK,
            f"zstd probe not run on {where}: {p.detail}",
            "fix what stops it (runtime, Slurm access) and run hpcbridge doctor again",
        )
    if p.gzip is False:
        return warn(
            CHECK,
            f"{runtime} cannot run even a gzip SIF on {where}: {p.detail}",
            "fix the runtime findings above; until then nothing says whether zstd is read",
        )
    if p.zstd:
        return ok(CHECK, f"{runtime} reads zstd-compressed SIFs on {where}")
    return ok(
        CHECK,
        f"{runtime} cannot read zstd-compressed SIFs on {where} ({p.detail}); "
        "conversions use gzip there",
    )


def check_zstd(z: Optional[ZstdFacts]) -> list[Finding]:
    if z is None:
        return []
    out = [_place(p, z.runtime) for p in z.places]
    if z.note:
        out.append(ok(CHECK, z.note))
    saved = f" (recorded in {z.record})" if z.record else ""
    if z.setting != "auto":
        out.append(ok(CHECK, f"convert.compression = {z.setting} is set: the probe is not used"))
    elif z.verdict:
        out.append(ok(CHECK, f"conversions use zstd by default{saved}"))
    elif z.verdict is None and not z.compute_asked and any(p.zstd for p in z.places):
        out.append(
            ok(
                CHECK,
                f"conversions use gzip until a compute node is probed too{saved}: "
                "run hpcbridge doctor --compute",
            )
        )
    else:
        out.append(ok(CHECK, f"conversions use gzip by default{saved}"))
    return out
