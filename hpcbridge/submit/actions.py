"""The library functions behind submit, rerun, resubmit and cancel."""

from __future__ import annotations

import dataclasses
import logging
import time as _time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import InputError, JobSpecError, StateError
from hpcbridge.slurm_syntax import format_indices, parse_indices
from hpcbridge.submit.plan import new_mem, new_time, resubmit_groups
from hpcbridge.submit.submitter import (
    effective_time_limit,
    launch,
    prepare,
    resolve_image,
    with_retry,
)
from hpcbridge.tracking.store import Record
from hpcbridge.tracking.summary import chunk_tasks

if TYPE_CHECKING:
    from hpcbridge.job.spec import JobSpec
    from hpcbridge.tracking.session import Session

log = logging.getLogger(__name__)


def outcome(record: Record) -> dict[str, Any]:
    """What submit/rerun/resubmit print (and ``--json`` returns)."""
    return {
        "id": record["id"],
        "kind": record.get("kind"),
        "parent": record.get("parent"),
        "state": record.get("state"),
        "name": record.get("name"),
        "tasks": record.get("tasks"),
        "task_count": record.get("task_count"),
        "job_ids": [c.get("job_id") for c in record["chunks"] if c.get("job_id")],
        "chunks": [
            {k: c.get(k) for k in ("offset", "indices", "job_id", "script")}
            for c in record["chunks"]
        ],
        "deferred": bool(record.get("deferred")),
        "image": record.get("image"),
        "directory": None,
    }


def resolve_dependencies(job: JobSpec, sess: Session) -> JobSpec:
    """Replace hpcbridge submission ids in ``dependencies`` by their Slurm job ids."""
    deps = []
    changed = False
    for dep in job.dependencies:
        ids: list[str] = []
        for ref in dep.ids:
            if dep.is_slurm_id(ref):
                ids.append(ref)
                continue
            rec = sess.store.load(sess.store.resolve(ref))
            jobs = [str(c["job_id"]) for c in rec.get("chunks", []) if c.get("job_id")]
            if not jobs:
                raise JobSpecError(
                    f"dependency {dep.type}:{ref}: submission {rec['id']} has no Slurm job yet"
                )
            ids.extend(jobs)
            changed = True
        deps.append(dataclasses.replace(dep, ids=tuple(ids)))
    return dataclasses.replace(job, dependencies=tuple(deps)) if changed else job


def load_for_submit(sess: Session, job_path: str, sets: Sequence[str]) -> tuple[JobSpec, str]:
    from hpcbridge.config import validate_job
    from hpcbridge.job.load import load_job

    job = load_job(job_path, sets)
    validate_job(job, sess.cfg)
    try:
        text = Path(job_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {job_path}: {exc.strerror}") from None
    return job, text


def submit_job(
    sess: Session, job_path: str, sets: Sequence[str], *, retries: int = 0, cwd: str
) -> dict[str, Any]:
    """Convert, render, sbatch and record one job file (see :mod:`.submitter`)."""
    job, text = load_for_submit(sess, job_path, sets)
    job = resolve_dependencies(job, sess)
    image = resolve_image(job, sess.cfg)
    with_retry("scontrol show config", retries, sess.poller.limits)
    record = prepare(sess, job, image, kind="submit", job_text=text, sets=sets, cwd=cwd)
    record = launch(sess, record, retries=retries)
    out = outcome(record)
    out["directory"] = str(sess.store.path(record["id"]))
    return out


def rerun(sess: Session, sub_id: str, *, retries: int = 0) -> dict[str, Any]:
    """Submit a recorded submission again with its recorded scripts (only the id differs)."""
    old = sess.store.load(sub_id)
    if not old.get("chunks"):
        raise StateError(f"submission {sub_id} has no recorded script")
    sif = (old.get("image") or {}).get("sif_path")
    if sif and not Path(sif).is_file():
        ref = old["image"].get("ref")
        raise StateError(
            f"the recorded image {sif} ({old['image'].get('digest')}) is no longer in the cache",
            f"convert it again: hpcbridge convert {ref}",
        )
    record = {k: v for k, v in old.items() if k not in ("snapshot", "error", "deferred")}
    record.update(kind="rerun", parent=sub_id, children=[], state="pending", cancelled="")
    record["chunks"] = [
        {
            k: v
            for k, v in c.items()
            if k not in ("job_id", "cluster", "submitted_epoch", "reconciled")
        }
        | {"job_id": None}
        for c in old["chunks"]
    ]
    for k in ("submitted_at", "submitted_epoch"):
        record.pop(k, None)
    from hpcbridge.tracking.store import host_info, utc_now

    record.update(host_info(), created_at=utc_now())
    record["created_epoch"] = _time.time()
    sub_dir = sess.store.new_submission(record)
    new_id = sub_dir.name
    old_dir = sess.store.path(sub_id)
    try:
        for name in sorted(p.name for p in old_dir.iterdir()):
            src = old_dir / name
            if not src.is_file() or name.startswith(".") or name in ("record.json", "status.json"):
                continue
            text = src.read_text(encoding="utf-8")
            mode = 0o700 if name.endswith(".sh") else 0o600
            sess.store.write_file(new_id, name, text.replace(sub_id, new_id), mode=mode)
        for c in record["chunks"]:
            c["sbatch_args"] = [a.replace(sub_id, new_id) for a in c.get("sbatch_args", [])]
        sess.store.save(record)
    except BaseException:
        sess.store.remove(new_id)
        raise
    _link_child(sess, sub_id, new_id)
    record = launch(sess, record, retries=retries)
    out = outcome(record)
    out["directory"] = str(sub_dir)
    return out


def _link_child(sess: Session, parent: str, child: str) -> None:
    def change(r: Record) -> None:
        kids = list(r.get("children", []))
        if child not in kids:
            kids.append(child)
        r["children"] = kids

    sess.store.update(parent, change)


def _job_from_record(record: Record) -> JobSpec:
    from hpcbridge._toml import loads as loads_toml
    from hpcbridge.job.load import job_from_dict

    job = record.get("job") or {}
    data = loads_toml(str(job.get("text", "")))
    return job_from_dict(
        data, job_dir=str(job.get("dir") or "."), sets=job.get("sets", []), source=job.get("file")
    )


def resubmit_failed(
    sess: Session,
    sub_id: str,
    *,
    mem: Optional[str] = None,
    time: Optional[str] = None,
    dry_run: bool = False,
    retries: int = 0,
) -> dict[str, Any]:
    """Resubmit the failed tasks (in the latest view) as a new record linked to ``sub_id``."""
    cycle = sess.tracker.cycle([sub_id])
    summary = cycle.summary(sub_id)
    view = summary.get("latest") or summary
    failed = [(f["task"], f["state"]) for f in view["failed"]]
    if not failed:
        pending = view["total"] - view["finished"]
        hint = f"{pending} task(s) still pending or running" if pending else "all tasks completed"
        raise InputError(f"submission {sub_id} has no failed tasks", hint)
    record = cycle.records[sub_id]
    job = _job_from_record(record)
    job = resolve_dependencies(job, sess)
    limit = effective_time_limit(job, sess.cfg)
    groups: list[tuple[JobSpec, list[int]]] = []
    notes: list[str] = []
    for (more_mem, more_time), tasks in sorted(resubmit_groups(failed, mem=mem, time=time).items()):
        res = job.resources
        if more_mem:
            value = new_mem(mem or "+50%", res.mem)
            res = dataclasses.replace(res, mem=value)
            notes.append(f"tasks {format_indices(tasks)}: mem {res.mem_str}")
        if more_time:
            value = new_time(time or "x2", limit)
            res = dataclasses.replace(res, time=value)
            notes.append(f"tasks {format_indices(tasks)}: time {res.time_str}")
        groups.append((dataclasses.replace(job, resources=res), sorted(tasks)))
    image = _recorded_image(record)
    if dry_run:
        from hpcbridge.submit.submitter import render_chunk

        spec, tasks = groups[0]
        from hpcbridge.submit.plan import Chunk

        rendered = render_chunk(
            spec, sess, image, "DRY-RUN", Chunk(0, tuple(tasks)) if spec.array else None
        )
        return {"script": rendered.script}
    new = prepare(
        sess,
        job,
        image,
        kind="resubmit",
        job_text=str(record["job"]["text"]),
        sets=record["job"].get("sets", []),
        cwd=str(record.get("cwd") or "."),
        parent=sub_id,
        groups=groups,
    )
    _link_child(sess, sub_id, new["id"])
    new = launch(sess, new, retries=retries)
    out = outcome(new)
    out["tasks"] = format_indices([t for t, _ in failed])
    out["note"] = "; ".join(notes)
    out["directory"] = str(sess.store.path(new["id"]))
    return out


def _recorded_image(record: Record) -> Any:
    from hpcbridge.render.types import ResolvedImage

    img = record.get("image") or {}
    if not img.get("sif_path") or not Path(img["sif_path"]).is_file():
        raise StateError(
            f"the recorded image {img.get('sif_path')} is no longer in the cache",
            f"convert it again: hpcbridge convert {img.get('ref')}",
        )
    return ResolvedImage(
        str(img["ref"]),
        str(img["digest"]),
        str(img["sif_path"]),
        str(img["sif_sha256"]),
        img.get("workdir"),
    )


def cancel_tasks(sess: Session, sub_id: str, tasks: Optional[str]) -> str:
    """scancel a whole submission or some tasks; records what hpcbridge cancelled."""
    record = sess.store.load(sub_id)
    all_tasks = {t for c in record["chunks"] for t, _ in chunk_tasks(c)}
    if tasks is None:
        chosen = all_tasks
    else:
        parsed = parse_indices(tasks)
        if parsed is None:
            raise InputError(f"--tasks {tasks!r} is not a list of task indices", "use e.g. 3,5-7")
        chosen = set(parsed)
        unknown = sorted(chosen - all_tasks)
        if unknown:
            raise InputError(
                f"--tasks {tasks}: task {unknown[0]} is not part of {sub_id}",
                f"its tasks are {record.get('tasks')}",
            )
    targets: list[str] = []
    for c in record["chunks"]:
        job = c.get("job_id")
        pairs = [(t, local) for t, local in chunk_tasks(c) if t in chosen]
        if not job or not pairs:
            continue
        if not record.get("is_array", True) or len(pairs) == len(chunk_tasks(c)):
            targets.append(str(job))
        else:
            targets.append(f"{job}_[{format_indices([local for _, local in pairs])}]")

    def change(r: Record) -> None:
        before = set(parse_indices(str(r.get("cancelled") or "")) or ())
        r["cancelled"] = format_indices(sorted(before | chosen))
        if chosen == all_tasks:
            r["deferred"] = False
            r["cancelled_all"] = True

    sess.store.update(sub_id, change)
    if targets:
        sess.scheduler.cancel(targets)
    return f"{sub_id}: tasks {format_indices(sorted(chosen))}" + (
        f" (scancel {' '.join(targets)})" if targets else ""
    )
