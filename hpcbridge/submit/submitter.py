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

import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from hpcbridge.errors import InputError, SchedulerError, SchedulerUnavailable, StateError
from hpcbridge.scheduler.base import SubmitUnconfirmed
from hpcbridge.scheduler.sbatch_options import effective_settings, log_patterns
from hpcbridge.submit.plan import Chunk, plan_chunks
from hpcbridge.tracking.record import ChunkRecord, ImagePin, JobSource, Record
from hpcbridge.tracking.store import stamp_host, utc_now

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.job.spec import JobSpec
    from hpcbridge.render.types import ResolvedImage
    from hpcbridge.tracking.session import Session
    from hpcbridge.tracking.tracker import Cycle

log = logging.getLogger(__name__)
T = TypeVar("T")


def resolve_image(
    ref: str, cfg: Config, progress: Optional[Callable[[str, int, int], None]] = None
) -> ResolvedImage:
    """Convert an image once, on this (login) node; a cached digest returns at once."""
    from hpcbridge.images.convert import convert_with_config
    from hpcbridge.render.types import ResolvedImage

    res = convert_with_config(ref, cfg, progress=progress)
    return ResolvedImage(ref, res.digest, str(res.path), res.sif_sha256, res.workdir)


def image_pin(image: ResolvedImage) -> ImagePin:
    return ImagePin(image.ref, image.digest, image.sif_path, image.sif_sha256, image.workdir)


def recorded_image(record: Record) -> ResolvedImage:
    """The record's SIF, which must still be in the cache."""
    from hpcbridge.render.types import ResolvedImage

    img = record.image
    if img is None or not img.sif_path or not Path(img.sif_path).is_file():
        raise StateError(
            f"the recorded image {img.sif_path if img else None} "
            f"({img.digest if img else '?'}) is no longer in the cache",
            f"convert it again: hpcbridge convert {img.ref if img else '<image>'}",
        )
    return ResolvedImage(img.ref, img.digest, img.sif_path, img.sif_sha256, img.workdir)


def effective_time_limit(job: JobSpec, cfg: Config) -> Optional[int]:
    if job.resources.time is not None:
        return job.resources.time
    from hpcbridge.config import resolve_partition

    try:
        part = resolve_partition(job, cfg)
    except InputError:
        return None
    return part.default_time if part is not None else None


def chunk_plan(job: JobSpec, sess: Session, tasks: Sequence[int]) -> list[Optional[Chunk]]:
    """Chunks of the job's tasks under the cluster's (and the site's) limits (None: no array)."""
    if job.array is None:
        return [None]
    limits = sess.poller.limits()
    size = limits.max_array_size
    site_max = sess.cfg.limits.max_array_size
    if site_max:
        size = min(size, int(site_max))
    per_chunk = min(size, limits.max_job_count)
    if limits.max_submit_jobs:
        per_chunk = min(per_chunk, limits.max_submit_jobs)
    return list(plan_chunks(tasks, max_array_size=size, max_tasks=per_chunk))


def render_chunk(
    job: JobSpec, sess: Session, image: ResolvedImage, sub_id: str, chunk: Optional[Chunk]
) -> ChunkScript:
    """The script of one chunk; hpcbridge's own log directory unless the job names a log.

    The log directory is written into the script's ``#SBATCH --output`` line, so
    the recorded script says where its logs are."""
    import dataclasses

    from hpcbridge.render.job import render_job
    from hpcbridge.render.types import ArrayChunk, TrackingContext

    sub_dir = sess.store.path(sub_id)
    tracking = TrackingContext(sub_id, str(sub_dir / "outcomes"))
    array_chunk = None if chunk is None else ArrayChunk(chunk.offset, chunk.spec)
    if job.output is None:
        pattern = "%x_%A_%a.out" if job.array is not None else "%x_%j.out"
        job = dataclasses.replace(job, output=str(sub_dir / "logs" / pattern))
    rendered = render_job(job, sess.cfg, image=image, tracking=tracking, chunk=array_chunk)
    return ChunkScript(rendered.script, [], rendered.job_name, dict(rendered.files))


def prepare(
    sess: Session,
    job: JobSpec,
    image: ResolvedImage,
    *,
    kind: str,
    source: JobSource,
    cwd: str,
    parent: Optional[str] = None,
    groups: Optional[list[tuple[JobSpec, list[int]]]] = None,
) -> Record:
    """Render every chunk and write a pending record with its scripts (no sbatch yet)."""
    plans: list[tuple[JobSpec, Optional[Chunk]]] = []
    for spec, tasks in groups if groups is not None else [(job, list(job.task_ids))]:
        plans.extend((spec, c) for c in chunk_plan(spec, sess, tasks))
    chunks = [
        ChunkRecord(
            offset=c.offset if c else 0,
            indices=c.spec if c else "0",
            script=f"job-{n}.sh",
            time_limit=effective_time_limit(spec, sess.cfg),
            mem=spec.resources.mem,
        )
        for n, (spec, c) in enumerate(plans)
    ]
    record = new_record(
        sess,
        kind=kind,
        name=job.name,
        image=image_pin(image),
        job=source,
        cwd=cwd,
        is_array=job.array is not None,
        chunks=chunks,
        time_limit=effective_time_limit(job, sess.cfg),
        parent=parent,
    )

    def scripts(sub_id: str) -> list[ChunkScript]:
        return [render_chunk(spec, sess, image, sub_id, c) for spec, c in plans]

    return store_pending(sess, record, scripts, source=("job.toml", source.text))


def with_retry(what: str, retries: int, call: Callable[[], T]) -> T:
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
    image: ImagePin,
    job: JobSource,
    cwd: str,
    is_array: bool,
    chunks: list[ChunkRecord],
    time_limit: Optional[int],
    parent: Optional[str] = None,
) -> Record:
    """A pending record (no id yet: the store allocates it)."""
    record = Record(
        kind=kind,
        parent=parent,
        name=name,
        created_at=utc_now(),
        created_epoch=time.time(),
        user=sess.user,
        cwd=cwd,
        cluster=sess.cfg.scheduler.cluster,
        scheduler=sess.scheduler.name,
        job=job,
        image=image,
        config={"values": sess.cfg.to_dict(), "sources": dict(sess.cfg.sources)},
        is_array=is_array,
        time_limit=time_limit,
        chunks=chunks,
    )
    stamp_host(record)
    record.set_tasks()
    return record


@dataclass(frozen=True)
class ChunkScript:
    """The script of one chunk and the options sbatch gets for it on its command line."""

    script: str
    sbatch_args: list[str]
    job_name: str  # the job's name unless an option or SBATCH_JOB_NAME says otherwise
    files: dict[str, str] = field(default_factory=dict)  # other files to write beside it


def store_pending(
    sess: Session,
    record: Record,
    scripts: Callable[[str], list[ChunkScript]],
    *,
    source: Optional[tuple[str, str]] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> Record:
    """Give ``record`` a directory, write each chunk's script (``scripts(id)``) and the
    record, state ``pending``; nothing is left behind if anything fails."""
    env = os.environ if environ is None else environ
    sub_id = sess.store.new_submission(record, save=False).name
    try:
        for n, (chunk, cs) in enumerate(zip(record.chunks, scripts(sub_id))):
            sess.store.write_file(sub_id, chunk.script, cs.script, mode=0o700, sync=False)
            for name, text in cs.files.items():
                sess.store.write_file(sub_id, name, text, sync=False)
            chunk.sbatch_args = [f"--comment=hpcb:{sub_id}.{n}", *cs.sbatch_args]
            settings = effective_settings(chunk.sbatch_args, cs.script, env)
            chunk.job_name = settings.job_name or cs.job_name
            chunk.output, chunk.error = log_patterns(settings, record.cwd, is_array=record.is_array)
        if source is not None:
            sess.store.write_file(sub_id, source[0], source[1], sync=False)
        sess.store.save(record)  # the commit point: fsync + rename
    except BaseException:
        sess.store.remove(sub_id)
        raise
    return record


def launch(sess: Session, record: Record, *, retries: int = 0) -> Record:
    """sbatch every chunk of a pending record that fits now; record each job id at once."""
    sub_id = record.id
    limits = sess.poller.cached_limits()
    room = None
    if limits is not None and limits.max_submit_jobs:
        room = limits.max_submit_jobs - _active_user_tasks(sess)
    accepted = 0
    for n, chunk in enumerate(record.chunks):
        if chunk.job_id:
            continue
        size = len(chunk.tasks())
        if room is not None and size > room and (accepted or _any_submitted(record)):
            record = _update(sess, sub_id, deferred=True)
            break
        script, cwd, args = (
            sess.store.path(sub_id) / chunk.script,
            Path(record.cwd),
            chunk.sbatch_args,
        )
        call = functools.partial(sess.scheduler.submit, script, cwd=cwd, extra_args=args)
        try:
            done = with_retry("sbatch", retries, call)
        except SchedulerError as exc:
            if isinstance(exc, SubmitUnconfirmed):  # maybe queued: keep the record pending
                _update(sess, sub_id, error=exc.message)  # status reconciles it by comment
                raise
            if not _any_submitted(record):
                sess.store.remove(sub_id)
                raise type(exc)(f"{exc.message}; nothing was submitted", exc.hint) from None
            _update(sess, sub_id, state="partial", error=exc.message, deferred=True)
            raise type(exc)(
                f"{exc.message}; chunks 0-{n - 1} of {sub_id} were submitted, the rest was not",
                "`hpcbridge watch` submits the remaining chunks once Slurm accepts them",
            ) from None
        record = sess.store.update(sub_id, _accepted(n, done.job_id, done.cluster, time.time()))
        accepted += 1
        if room is not None:
            room -= size
    remaining = [c for c in record.chunks if not c.job_id]
    if not remaining and record.state == "submitted":
        return record
    if remaining:
        return _update(sess, sub_id, state="partial", deferred=True)
    return _update(sess, sub_id, state="submitted", deferred=False, error=None)


def _accepted(
    n: int, job_id: str, cluster: Optional[str], stamp: float
) -> Callable[[Record], None]:
    def change(r: Record) -> None:
        c = r.chunks[n]
        c.job_id, c.cluster, c.submitted_epoch = job_id, cluster, stamp
        r.submitted_at = r.submitted_at or utc_now()
        r.submitted_epoch = r.submitted_epoch or stamp
        if all(c.job_id for c in r.chunks):  # the last one: finalise too
            r.state, r.deferred, r.error = "submitted", False, None

    return change


def _any_submitted(record: Record) -> bool:
    return any(c.job_id for c in record.chunks)


def _update(
    sess: Session,
    sub_id: str,
    *,
    state: Optional[str] = None,
    deferred: Optional[bool] = None,
    error: Optional[str] = "",
) -> Record:
    """Set the record's state, deferred flag and error (``""``: leave the error alone)."""

    def change(r: Record) -> None:
        if state is not None:
            r.state = state
        if deferred is not None:
            r.deferred = deferred
        if error != "":
            r.error = error

    return sess.store.update(sub_id, change)


def _active_user_tasks(sess: Session) -> int:
    """Pending/running tasks of the user, from the shared poll cache (no extra query if fresh)."""
    answer = sess.poller.answer([], queue_view=True)
    if answer.result is None:
        return 0
    return sum(len(j.task_ids or (0,)) for j in answer.result.jobs if not j.state.terminal)


def submit_deferred(sess: Session, sub_id: str, cycle: Cycle) -> None:
    """Submit chunks held back by the per-user limit (called by ``watch`` each cycle)."""
    record = cycle.records[sub_id]
    if not record.deferred or record.cancelled_all:
        return
    if cycle.answer is None or not cycle.answer.ok:
        return
    try:
        cycle.records[sub_id] = launch(sess, record)
    except (SchedulerError, StateError) as exc:
        log.warning("deferred chunks of %s: %s", sub_id, exc)
