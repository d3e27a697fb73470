"""``sacct -P`` for per-task accounting figures: the argv builder and its parser (pure).

One call asks for the jobs or array tasks given (``123``, ``123_4``) with the
fields of :data:`ACCOUNTING_FIELDS` (plus ``SLUID`` from Slurm 26.05 on), header
included, so the parser reads the columns by name whatever release wrote them.
Step lines (``123_4.batch``, ``.extern``, ``.0``) are folded into their task:
``MaxRSS`` is the largest over the steps.  Pending remainders of an array
(``123_[5-999]``) carry no figures and are skipped.  Facts: Slurm 22.05 and
26.05 print sizes with a unit suffix (``102220K``, ``100M``), ``Elapsed`` as
``[D-]HH:MM:SS``, ``TotalCPU`` as ``[D-][HH:]MM:SS[.mmm]``, times as local
``YYYY-MM-DDTHH:MM:SS`` or ``Unknown``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Optional

from hpcbridge.scheduler.base import AccountingResult, TaskAccounting
from hpcbridge.scheduler.slurm import parse_exit_code
from hpcbridge.scheduler.states import map_state
from hpcbridge.scheduler.versions import has_sluid

log = logging.getLogger(__name__)

# JobName last: it is free text and may itself contain the separator.
ACCOUNTING_FIELDS = (
    "JobID",
    "JobIDRaw",
    "State",
    "ExitCode",
    "Reason",
    "Elapsed",
    "TotalCPU",
    "MaxRSS",
    "ReqMem",
    "AllocCPUS",
    "NodeList",
    "Start",
    "End",
    "JobName",
)

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)([KMGTP]?)([nc]?)\s*")
_ALLOC_ID = re.compile(r"(\d+)(?:_(\d+))?(?:\+\d+)?")
_NO_TIME = ("", "Unknown", "None")


def accounting_fields(version: str = "") -> tuple[str, ...]:
    """The sacct fields asked for on this release (SLUID only where it exists)."""
    if has_sluid(version):
        return (*ACCOUNTING_FIELDS[:-1], "SLUID", ACCOUNTING_FIELDS[-1])
    return ACCOUNTING_FIELDS


def accounting_argv(
    job_ids: Sequence[str],
    *,
    since: Optional[str] = None,
    version: str = "",
    cluster: Optional[str] = None,
) -> list[str]:
    """``sacct -P -o FIELDS -j IDS [-S since]`` (with its header line; steps included)."""
    argv = ["sacct", "-P", *(["-M", cluster] if cluster else [])]
    argv += ["-o", ",".join(accounting_fields(version)), "-j", ",".join(job_ids)]
    if since:
        argv += ["-S", since]
    return argv


def parse_size(text: str, base: str) -> Optional[int]:
    """``102220K`` / ``100M`` / ``1.5G`` -> bytes; a bare number is in ``base`` units.

    A trailing ``n``/``c`` (ReqMem of releases before 21.08: per node / per CPU)
    is dropped; :func:`parse_accounting` multiplies a per-CPU value by AllocCPUS.
    """
    m = _SIZE.fullmatch(text)
    if not m:
        return None
    unit = m.group(2) or base
    return int(float(m.group(1)) * 1024 ** _UNITS[unit])


def parse_duration(text: str) -> Optional[float]:
    """``[D-][HH:]MM:SS[.mmm]`` -> seconds (Elapsed, TotalCPU); anything else -> None."""
    text = text.strip()
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            return None
        days = int(d)
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        return None
    try:
        seconds = float(parts[-1])
        minutes = int(parts[-2]) if len(parts) >= 2 else 0
        hours = int(parts[-3]) if len(parts) == 3 else 0
    except ValueError:
        return None
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def _int(text: str) -> Optional[int]:
    return int(text) if text.strip().isdigit() else None


def _split(line: str, width: int) -> Optional[list[str]]:
    parts = line.split("|")
    if len(parts) < width:
        return None
    return [*parts[: width - 1], "|".join(parts[width - 1 :])]


def _rows(stdout: str, fields: Sequence[str], warnings: list[str]) -> list[dict[str, str]]:
    lines = [x for x in stdout.splitlines() if x.strip()]
    if lines and lines[0].startswith("JobID|"):
        fields = lines.pop(0).split("|")
    rows = []
    for line in lines:
        parts = _split(line, len(fields))
        if parts is None:
            warnings.append(f"sacct: skipped malformed line {line[:120]!r}")
            continue
        rows.append({k: v.strip() for k, v in zip(fields, parts)})
    return rows


def _task(row: dict[str, str], max_rss: Optional[int]) -> Optional[TaskAccounting]:
    m = _ALLOC_ID.fullmatch(row.get("JobID", ""))
    if not m:
        return None
    raw_state = row.get("State", "")
    code, sig = parse_exit_code(row.get("ExitCode", ""))
    cpus = _int(row.get("AllocCPUS", ""))
    req_text = row.get("ReqMem", "")
    req = parse_size(req_text, "M")
    if req is not None and req_text.endswith("c") and cpus:
        req *= cpus
    elapsed = parse_duration(row.get("Elapsed", ""))
    nodes = row.get("NodeList", "")
    reason = row.get("Reason", "")
    return TaskAccounting(
        job_id=m.group(0),
        array_job_id=m.group(1),
        task=int(m.group(2)) if m.group(2) is not None else None,
        raw_job_id=row.get("JobIDRaw", "") or m.group(1),
        state=map_state(raw_state),
        raw_state=raw_state,
        reason="" if reason == "None" else reason,
        exit_code=code,
        signal=sig,
        elapsed_s=None if elapsed is None else int(elapsed),
        total_cpu_s=parse_duration(row.get("TotalCPU", "")),
        max_rss_bytes=max_rss,
        req_mem_bytes=req,
        alloc_cpus=cpus,
        node_list="" if nodes.startswith("None") else nodes,
        start=None if row.get("Start", "") in _NO_TIME else row["Start"],
        end=None if row.get("End", "") in _NO_TIME else row["End"],
        sluid=row.get("SLUID") or None,
        name=row.get("JobName", ""),
    )


def parse_accounting(stdout: str, fields: Sequence[str] = ACCOUNTING_FIELDS) -> AccountingResult:
    """Parse ``sacct -P`` text: with its header line, or headerless in ``fields`` order."""
    warnings: list[str] = []
    allocs: dict[str, dict[str, str]] = {}
    rss: dict[str, int] = {}
    for row in _rows(stdout, fields, warnings):
        jobid = row.get("JobID", "")
        base, dot, _step = jobid.partition(".")
        if dot:
            size = parse_size(row.get("MaxRSS", ""), "K")
            if size is not None:
                rss[base] = max(size, rss.get(base, 0))
        elif "[" not in jobid:  # a pending remainder "123_[5-999]": no figures yet
            allocs[jobid] = row
    tasks: list[TaskAccounting] = []
    for jobid, row in allocs.items():
        sizes = [x for x in (parse_size(row.get("MaxRSS", ""), "K"), rss.get(jobid)) if x]
        task = _task(row, max(sizes) if sizes else None)
        if task is None:
            warnings.append(f"sacct: skipped line with bad job id {jobid[:120]!r}")
            continue
        tasks.append(task)
    for w in warnings:
        log.warning("%s", w)
    return AccountingResult(tuple(tasks), tuple(warnings))
