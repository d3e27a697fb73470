"""Submitting: convert once, render per chunk, ``sbatch --parsable``, record.

Order of events, so that no fault loses or duplicates a submission:

1. everything that can fail without side effects (config, job file, image
   conversion, cluster limits, rendering) happens first;
2. a record in state ``pending`` is written (with the scripts) BEFORE sbatch;
3. each successful sbatch is recorded at once (chunk job id);
4. the record is finalised (``submitted``).

If the controller cannot be reached before any chunk was accepted, the pending
record is removed (nothing is recorded as submitted) and the error says so.
If the process dies after sbatch accepted a chunk but before step 3, the next
hpcbridge command reconciles the pending record through the job comment
``hpcb:<id>.<chunk>`` (squeue) or the tasks' outcome files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge.errors import SchedulerError, SchedulerUnavailable, StateError
from hpcbridge.slurm_syntax import format_indices
from hpcbridge.submit.plan import Chunk, plan_chunks
from hpcbridge.tracking.store import Record, host_info, utc_now

if TYPE_CHECKING:
    from hpcbridge.job.spec import JobSpec
    from hpcbridge.render.types import RenderedJob, ResolvedImage
    from hpcbridge.tracking.session import Session
    from hpcbridge.tracking.tracker import Cycle

log = logging.getLogger(__name__)


def resolve_image(job: JobSpec, cfg: Any) -> ResolvedImage:
    """Convert the job's image once, on this (login) node; a cached digest returns at once."""
    from hpcbridge.images.convert import convert_with_config
    from hpcbridge.render.types import ResolvedImage

    res = convert_with_config(job.image, cfg)
    workdir = getattr(res, "workdir", None)
    return ResolvedImage(job.image, res.digest, str(res.path), res.sif_sha256, workdir)


def config_snapshot(cfg: Any) -> dict[str, Any]:
    data: dict[str, Any] = cfg.to_dict()
    return {"values": data, "sources": dict(getattr(cfg, "sources", {}) or {})}


def chunk_plan(job: JobSpec, sess: Session, tasks: Optional[Sequence[int]] = None) -> list[Chunk]:
    """Chunks of the job's tasks under the cluster's (and the site's) limits."""
    if job.array is None:
        return [Chunk(0, (0,))]
    limits = sess.poller.limits()
    size = limits.max_array_size
    site_max = getattr(getattr(sess.cfg, "limits", None), "max_array_size", None)
    if site_max:
        size = min(size, int(site_max))
    per_chunk = min(size, limits.max_job_count)
    if limits.max_submit_jobs:
        per_chunk = min(per_chunk, limits.max_submit_jobs)
    return plan_chunks(
        tasks if tasks is not None else job.task_ids, max_array_size=size, max_tasks=per_chunk
    )


def render_chunk(
    job: JobSpec, sess: Session, image: ResolvedImage, sub_id: str, chunk: Optional[Chunk]
) -> RenderedJob:
    from hpcbridge.render.job import render_job
    from hpcbridge.render.types import ArrayChunk, TrackingContext

    tracking = TrackingContext(sub_id, str(sess.store.path(sub_id) / "outcomes"))
    array_chunk = None if chunk is None else ArrayChunk(chunk.offset, chunk.spec)
    return render_job(job, sess.cfg, image=image, tracking=tracking, chunk=array_chunk)


def sbatch_extra(
    job: Optional[JobSpec], sess: Session, sub_id: str, n: int, is_array: bool
) -> list[str]:
    """Command-line options added to the script's: the chunk's comment and the log location."""
    extra = [f"--comment=hpcb:{sub_id}.{n}"]
    if job is None or job.output is None:
        pattern = "%x_%A_%a.out" if is_array else "%x_%j.out"
        extra.append(f"--output={sess.store.path(sub_id) / 'logs' / pattern}")
    return extra


def with_retry(what: str, retries: int, call: Any) -> Any:
    """Call ``call()``; on SchedulerUnavailable retry ``retries`` times with backoff."""
    delay = 2.0
    for attempt in range(retries + 1):
        try:
            return call()
        except SchedulerUnavailable as exc:
            if attempt >= retries:
                if retries:
                    raise SchedulerUnavailable(
                        f"{exc.message}; gave up after {retries + 1} attempts", exc.hint
                    ) from None
                raise
            log.warning("%s: %s; retrying in %g s", what, exc.message, delay)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")


def new_record(
    sess: Session,
    *,
    kind: str,
    name: str,
    image: dict[str, Any],
    job_text: str,
    job_file: Optional[str],
    sets: Sequence[str],
    job_dir: str,
    cwd: str,
    is_array: bool,
    chunks: list[dict[str, Any]],
    time_limit: Optional[int],
    parent: Optional[str] = None,
) -> Record:
    tasks = sorted(t for c in chunks for t in _chunk_globals(c))
    return {
        "id": "",
        "kind": kind,
        "parent": parent,
        "children": [],
        "state": "pending",
        "name": name,
        "created_at": utc_now(),
        "created_epoch": time.time(),
        **host_info(),
        "user": sess.user,
        "cwd": cwd,
        "cluster": sess.cfg.scheduler.cluster,
        "scheduler": sess.scheduler.name,
        "job": {"file": job_file, "sets": list(sets), "dir": job_dir, "text": job_text},
        "image": image,
        "config": config_snapshot(sess.cfg),
        "is_array": is_array,
        "tasks": format_indices(tasks),
        "task_count": len(tasks),
        "time_limit": time_limit,
        "chunks": chunks,
        "cancelled": "",
    }


def _chunk_globals(c: dict[str, Any]) -> list[int]:
    from hpcbridge.slurm_syntax import parse_indices

    return [i + int(c["offset"]) for i in parse_indices(str(c["indices"])) or ()]


def effective_time_limit(job: JobSpec, cfg: Any) -> Optional[int]:
    if job.resources.time is not None:
        return job.resources.time
    try:
        from hpcbridge.config import resolve_partition

        part = resolve_partition(job, cfg)
    except Exception:
        return None
    return getattr(part, "default_time", None) if part is not None else None


def launch(sess: Session, record: Record, *, retries: int = 0) -> Record:
    """sbatch every chunk of a pending record that fits now; record each job id at once."""
    sub_id = record["id"]
    sub_dir = sess.store.path(sub_id)
    limits = sess.poller.cached_limits()
    room = None
    if limits is not None and limits.max_submit_jobs:
        room = limits.max_submit_jobs - _active_user_tasks(sess)
    accepted = 0
    for n, chunk in enumerate(record["chunks"]):
        if chunk.get("job_id"):
            continue
        size = len(_chunk_globals(chunk))
        if room is not None and size > room and (accepted or _any_submitted(record)):
            _set(sess, sub_id, deferred=True)
            record["deferred"] = True
            break
        script = sub_dir / chunk["script"]

        def call(
            script: Path = script, chunk: dict[str, Any] = chunk, cwd: Path = Path(record["cwd"])
        ) -> Any:
            return sess.scheduler.submit(script, cwd=cwd, extra_args=chunk["sbatch_args"])

        try:
            done = with_retry("sbatch", retries, call)
        except (SchedulerUnavailable, SchedulerError) as exc:
            if not _any_submitted(record):
                sess.store.remove(sub_id)
                raise type(exc)(f"{exc.message}; nothing was submitted", exc.hint) from None
            _set(sess, sub_id, state="partial", error=exc.message, deferred=True)
            raise type(exc)(
                f"{exc.message}; chunks 0-{n - 1} of {sub_id} were submitted, the rest was not",
                "`hpcbridge watch` submits the remaining chunks once Slurm accepts them",
            ) from None
        stamp = time.time()

        def change(
            r: Record,
            n: int = n,
            job_id: str = done.job_id,
            cluster: Any = done.cluster,
            stamp: float = stamp,
        ) -> None:
            r["chunks"][n].update(job_id=job_id, cluster=cluster, submitted_epoch=stamp)
            r["submitted_at"] = r.get("submitted_at") or utc_now()
            r["submitted_epoch"] = r.get("submitted_epoch") or stamp
            if all(c.get("job_id") for c in r["chunks"]):  # the last one: finalise too
                r["state"] = "submitted"
                r["deferred"] = False
                r.pop("error", None)

        record = sess.store.update(sub_id, change)
        accepted += 1
        if room is not None:
            room -= size
    remaining = [c for c in record["chunks"] if not c.get("job_id")]
    if not remaining and record.get("state") == "submitted":
        return record

    def finish(r: Record) -> None:
        r["state"] = "submitted" if not remaining else "partial"
        r["deferred"] = bool(remaining)
        if not remaining:
            r.pop("error", None)

    return sess.store.update(sub_id, finish)


def _any_submitted(record: Record) -> bool:
    return any(c.get("job_id") for c in record["chunks"])


def _set(sess: Session, sub_id: str, **values: Any) -> None:
    sess.store.update(sub_id, lambda r: r.update(values))


def _active_user_tasks(sess: Session) -> int:
    """Pending/running tasks of the user, from the shared poll cache (no extra query if fresh)."""
    answer = sess.poller.answer([], queue_view=True)
    if answer.result is None:
        return 0
    return sum(len(j.task_ids or (0,)) for j in answer.result.jobs if not j.state.terminal)


def submit_deferred(sess: Session, record: Record, cycle: Cycle) -> None:
    """Submit chunks held back by the per-user limit (called by ``watch`` each cycle)."""
    if not record.get("deferred") or cycle.answer is None or not cycle.answer.ok:
        return
    cancelled = record.get("cancelled_all")
    if cancelled:
        return
    try:
        cycle.records[record["id"]] = launch(sess, record)
    except (SchedulerError, StateError) as exc:
        log.warning("deferred chunks of %s: %s", record["id"], exc)


def prepare(
    sess: Session,
    job: JobSpec,
    image: ResolvedImage,
    *,
    kind: str,
    job_text: str,
    sets: Sequence[str],
    cwd: str,
    parent: Optional[str] = None,
    groups: Optional[list[tuple[JobSpec, list[int]]]] = None,
) -> Record:
    """Render every chunk and write a pending record with its scripts (no sbatch yet)."""
    plans: list[tuple[JobSpec, Optional[Chunk]]] = []
    for spec, tasks in groups if groups is not None else [(job, list(job.task_ids))]:
        if spec.array is None:
            plans.append((spec, None))
        else:
            plans.extend((spec, c) for c in chunk_plan(spec, sess, tasks))
    image_info = {
        "ref": image.ref,
        "digest": image.digest,
        "sif_path": image.sif_path,
        "sif_sha256": image.sif_sha256,
        "workdir": image.workdir,
    }
    chunks_meta: list[dict[str, Any]] = [
        {
            "offset": c.offset if c else 0,
            "indices": c.spec if c else "0",
            "script": f"job-{n}.sh",
            "job_id": None,
            "time_limit": effective_time_limit(spec, sess.cfg),
            "mem": spec.resources.mem,
        }
        for n, (spec, c) in enumerate(plans)
    ]
    record = new_record(
        sess,
        kind=kind,
        name=job.name,
        image=image_info,
        job_text=job_text,
        job_file=job.source,
        sets=sets,
        job_dir=job.job_dir,
        cwd=cwd,
        is_array=job.array is not None,
        chunks=chunks_meta,
        time_limit=effective_time_limit(job, sess.cfg),
        parent=parent,
    )
    sub_dir = sess.store.new_submission(record, save=False)
    sub_id = sub_dir.name
    try:
        for n, (spec, c) in enumerate(plans):
            rendered = render_chunk(spec, sess, image, sub_id, c)
            sess.store.write_file(sub_id, f"job-{n}.sh", rendered.script, mode=0o700, sync=False)
            for name, text in rendered.files.items():
                sess.store.write_file(sub_id, name, text, sync=False)
            chunks_meta[n]["sbatch_args"] = sbatch_extra(
                spec, sess, sub_id, n, spec.array is not None
            )
            chunks_meta[n]["job_name"] = rendered.job_name
        sess.store.write_file(sub_id, "job.toml", job_text, sync=False)
        sess.store.save(record)  # the commit point: fsync + rename
    except BaseException:
        sess.store.remove(sub_id)
        raise
    return record


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None


def cwd_now() -> str:
    return os.getcwd()
