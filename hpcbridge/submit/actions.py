"""The library functions behind submit, rerun, resubmit and cancel."""

from __future__ import annotations

import dataclasses
import logging
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import InputError, JobSpecError, StateError
from hpcbridge.slurm_syntax import format_indices, parse_indices
from hpcbridge.submit.plan import Chunk, resubmit_sizes, size_groups
from hpcbridge.submit.results import Cancellation, Submission
from hpcbridge.submit.submitter import (
    effective_time_limit,
    launch,
    prepare,
    recorded_image,
    render_chunk,
    resolve_image,
    with_retry,
)
from hpcbridge.tracking.record import JobSource, Record
from hpcbridge.tracking.store import stamp_host, utc_now

if TYPE_CHECKING:
    from hpcbridge.job.spec import JobSpec
    from hpcbridge.render.types import ResolvedImage
    from hpcbridge.tracking.session import Session

log = logging.getLogger(__name__)


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
            if not rec.job_ids():
                raise JobSpecError(
                    f"dependency {dep.type}:{ref}: submission {rec.id} has no Slurm job yet"
                )
            ids.extend(rec.job_ids())
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
    sess: Session,
    job_path: str,
    sets: Sequence[str],
    *,
    retries: int = 0,
    cwd: str,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> Submission:
    """Convert, render, sbatch and record one job file (see :mod:`.submitter`);
    ``progress`` hears the conversion (see :mod:`hpcbridge.images.progress`)."""
    job, text = load_for_submit(sess, job_path, sets)
    job = resolve_dependencies(job, sess)
    image = resolve_image(job.image, sess.cfg, progress)
    with_retry("scontrol show config", retries, sess.poller.limits)
    source = JobSource(job.source, job.job_dir, list(sets), text)
    record = prepare(sess, job, image, kind="submit", source=source, cwd=cwd)
    record = launch(sess, record, retries=retries)
    return Submission(record, sess.store.path(record.id))


def rerun(sess: Session, sub_id: str, *, retries: int = 0) -> Submission:
    """Submit a recorded submission again with its recorded scripts (only the id differs)."""
    old = sess.store.load(sub_id)
    if not old.chunks:
        raise StateError(f"submission {sub_id} has no recorded script")
    recorded_image(old)  # still in the cache
    record = dataclasses.replace(
        old,
        kind="rerun",
        parent=sub_id,
        children=[],
        state="pending",
        created_at=utc_now(),
        created_epoch=_time.time(),
        submitted_at=None,
        submitted_epoch=None,
        chunks=[dataclasses.replace(c, job_id=None, cluster=None) for c in old.chunks],
        cancelled="",
        cancelled_all=False,
        deferred=False,
        error=None,
        snapshot=None,
    )
    for c in record.chunks:
        c.submitted_epoch, c.reconciled = None, False
    stamp_host(record)
    sub_dir = sess.store.new_submission(record, save=False)
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
        for c in record.chunks:
            c.sbatch_args = [a.replace(sub_id, new_id) for a in c.sbatch_args]
            c.output = c.output.replace(sub_id, new_id) if c.output else c.output
            c.error = c.error.replace(sub_id, new_id) if c.error else c.error
        sess.store.save(record)
    except BaseException:
        sess.store.remove(new_id)
        raise
    link_child(sess, sub_id, new_id)
    record = launch(sess, record, retries=retries)
    return Submission(record, sub_dir)


def link_child(sess: Session, parent: str, child: str) -> None:
    def change(r: Record) -> None:
        if child not in r.children:
            r.children.append(child)

    sess.store.update(parent, change)


def job_from_record(record: Record) -> JobSpec:
    """The job file of a submission, as it was submitted (with its ``--set``s)."""
    from hpcbridge._toml import loads as loads_toml
    from hpcbridge.job.load import job_from_dict

    if record.kind == "sbatch":
        raise InputError(
            f"submission {record.id} was made by `hpcbridge sbatch` and has no job file",
            f"submit the script again, or run `hpcbridge rerun {record.id}`",
        )
    data = loads_toml(record.job.text)
    return job_from_dict(data, job_dir=record.job.dir, sets=record.job.sets, source=record.job.file)


@dataclass(frozen=True)
class ResubmitPlan:
    """The failed tasks of a submission, grouped by the resources they get."""

    record: Record
    job: JobSpec
    groups: list[tuple[JobSpec, list[int]]]
    notes: list[str]  # per group: "tasks 7: mem 384M"
    tasks: str  # the failed tasks
    image: ResolvedImage
    changes: tuple[str, ...] = ()  # per task: what changed and why


def with_resources(job: JobSpec, mem: Optional[int], time: Optional[int]) -> JobSpec:
    """``job`` asking for ``mem`` MiB (replacing --mem-per-cpu) and ``time`` s; None: as is."""
    res = job.resources
    if mem is not None:
        res = dataclasses.replace(res, mem=mem, mem_per_cpu=None)
    if time is not None:
        res = dataclasses.replace(res, time=time)
    return dataclasses.replace(job, resources=res)


def plan_resubmission(
    sess: Session, sub_id: str, *, mem: Optional[str], time: Optional[str]
) -> ResubmitPlan:
    """The failed tasks (in the latest view) and their resources: after OUT_OF_MEMORY the
    measured peak plus a margin, after TIMEOUT twice the measured elapsed time (see
    :func:`hpcbridge.submit.plan.resubmit_sizes`)."""
    from hpcbridge.report.collect import attempts_of, gather
    from hpcbridge.report.sizing import latest_by_task

    failed_states = {"OUT_OF_MEMORY", "TIMEOUT"}
    g = gather(sess, sub_id, accounting=mem is None or time is None)
    view = g.cycle.summary(sub_id).view
    failed = [(f.task, f.state.value) for f in view.failed]
    if not failed:
        pending = view.total - view.finished
        hint = f"{pending} task(s) still pending or running" if pending else "all tasks completed"
        raise InputError(f"submission {sub_id} has no failed tasks", hint)
    record = g.records[sub_id]
    job = resolve_dependencies(job_from_record(record), sess)
    measured = {}
    if any(state in failed_states for _, state in failed):
        measured = latest_by_task(attempts_of(g))
    sizes = resubmit_sizes(
        failed,
        measured,
        mem=mem,
        time=time,
        job_mem=job.resources.mem,
        job_time=effective_time_limit(job, sess.cfg),
    )
    groups: list[tuple[JobSpec, list[int]]] = []
    notes: list[str] = []
    for (m, t), tasks in size_groups(sizes):
        spec = with_resources(job, m, t)
        changed = [
            f"mem {spec.resources.mem_str}" if m else "",
            f"time {spec.resources.time_str}" if t else "",
        ]
        if any(changed):
            notes.append(f"tasks {format_indices(tasks)}: {', '.join(c for c in changed if c)}")
        groups.append((spec, tasks))
    changes = tuple(w for task in sorted(sizes) for w in sizes[task].why)
    tasks_text = format_indices([t for t, _ in failed])
    return ResubmitPlan(record, job, groups, notes, tasks_text, recorded_image(record), changes)


def resubmit_failed(
    sess: Session,
    sub_id: str,
    *,
    mem: Optional[str] = None,
    time: Optional[str] = None,
    retries: int = 0,
) -> Submission:
    """Resubmit the failed tasks (in the latest view) as a new record linked to ``sub_id``."""
    plan = plan_resubmission(sess, sub_id, mem=mem, time=time)
    record = plan.record
    new = prepare(
        sess,
        plan.job,
        plan.image,
        kind="resubmit",
        source=dataclasses.replace(record.job),
        cwd=record.cwd,
        parent=sub_id,
        groups=plan.groups,
    )
    link_child(sess, sub_id, new.id)
    new = launch(sess, new, retries=retries)
    return Submission(
        new, sess.store.path(new.id), "; ".join(plan.notes), plan.tasks, changes=plan.changes
    )


def resubmit_script(
    sess: Session, sub_id: str, *, mem: Optional[str] = None, time: Optional[str] = None
) -> str:
    """The script ``resubmit`` would submit first (``--dry-run``); nothing is recorded."""
    plan = plan_resubmission(sess, sub_id, mem=mem, time=time)
    spec, tasks = plan.groups[0]
    chunk = Chunk(0, tuple(tasks)) if spec.array else None
    return render_chunk(spec, sess, plan.image, "DRY-RUN", chunk).script


def rerun_right_sized(sess: Session, sub_id: str, *, retries: int = 0) -> Submission:
    """Submit every task again with the memory and time limit ``report`` suggests (tasks that
    need more, by their own measurements, get their own size); the new submission is a
    ``rerun`` linked to ``sub_id``."""
    from hpcbridge.report.collect import collect_report
    from hpcbridge.report.sizing import sized_groups

    report = collect_report(sess, sub_id)
    if report.memory.value is None and report.time.value is None:
        raise InputError(
            f"submission {sub_id} has nothing measured to size by "
            f"({report.memory.basis}; {report.time.basis})",
            f"`hpcbridge report {sub_id}` shows what is known; `hpcbridge rerun {sub_id}` repeats it",
        )
    record = sess.store.load(sub_id)
    job = resolve_dependencies(job_from_record(record), sess)
    groups: list[tuple[JobSpec, list[int]]] = []
    notes: list[str] = []
    for (m, t), tasks in sized_groups(record.task_ids(), report.memory, report.time).items():
        spec = with_resources(job, m, t)
        groups.append((spec, tasks))
        res = spec.resources
        notes.append(
            f"tasks {format_indices(tasks)}: mem {res.mem_str or '-'}, time {res.time_str or '-'}"
        )
    changes: list[str] = []
    for s in (report.memory, report.time):
        if s.value is None:
            changes.append(f"{s.resource}: unchanged, {s.basis}")
            continue
        changes.append(f"{s.resource} {s.text(s.current)} -> {s.text(s.value)}: {s.basis}")
        changes.extend(
            f"task {o.task}: {s.resource} {s.text(o.value)}: {o.why}" for o in s.outliers
        )
    new = prepare(
        sess,
        job,
        recorded_image(record),
        kind="rerun",
        source=dataclasses.replace(record.job),
        cwd=record.cwd,
        parent=sub_id,
        groups=groups,
    )
    link_child(sess, sub_id, new.id)
    new = launch(sess, new, retries=retries)
    return Submission(new, sess.store.path(new.id), "; ".join(notes), changes=tuple(changes))


def cancel_tasks(sess: Session, sub_id: str, tasks: Optional[str]) -> Cancellation:
    """scancel a whole submission or some tasks; records what hpcbridge cancelled."""
    record = sess.store.load(sub_id)
    all_tasks = set(record.task_ids())
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
                f"its tasks are {record.tasks}",
            )
    targets: list[str] = []
    for c in record.chunks:
        pairs = [(t, local) for t, local in c.tasks() if t in chosen]
        if not c.job_id or not pairs:
            continue
        if not record.is_array or len(pairs) == len(c.tasks()):
            targets.append(c.job_id)
        else:
            targets.append(f"{c.job_id}_[{format_indices([local for _, local in pairs])}]")

    def change(r: Record) -> None:
        r.cancelled = format_indices(sorted(r.cancelled_tasks() | chosen))
        if chosen == all_tasks:
            r.deferred = False
            r.cancelled_all = True

    sess.store.update(sub_id, change)
    if targets:
        sess.scheduler.cancel(targets)
    return Cancellation(sub_id, format_indices(sorted(chosen)), tuple(targets))
