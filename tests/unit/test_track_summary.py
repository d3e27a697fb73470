"""Pure tracking logic: chunk planning, outcome files, merging, summaries, resources."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hpcbridge.errors import InputError
from hpcbridge.scheduler import sacct, slurm
from hpcbridge.scheduler.base import TaskAccounting
from hpcbridge.scheduler.states import JobState
from hpcbridge.submit.plan import new_mem, new_time, plan_chunks, resubmit_groups
from hpcbridge.tracking import accounting as acct_store
from hpcbridge.tracking.outcomes import combine, parse_end, parse_start
from hpcbridge.tracking.record import Record, record_from_dict
from hpcbridge.tracking.summary import latest_view, summarise, task_statuses
from hpcbridge.tracking.text import progress_line, status_lines


def test_chunks_respect_max_array_size_as_an_index_cap() -> None:
    chunks = plan_chunks(range(2500), max_array_size=1001)
    assert [(c.offset, c.spec) for c in chunks] == [
        (0, "0-1000"),
        (1001, "0-1000"),
        (2002, "0-497"),
    ]
    assert sorted(t for c in chunks for t in c.tasks) == list(range(2500))
    for c in chunks:
        assert max(c.local) < 1001


def test_chunks_of_sparse_indices_and_task_cap() -> None:
    chunks = plan_chunks([3, 17, 999, 1500, 4000], max_array_size=1001)
    assert [(c.offset, c.local) for c in chunks] == [(0, (3, 17, 999)), (1500, (0,)), (4000, (0,))]
    capped = plan_chunks(range(10), max_array_size=1001, max_tasks=4)
    assert [c.tasks for c in capped] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert plan_chunks(range(5), max_array_size=1001)[0].offset == 0


def test_outcome_parsing() -> None:
    start = parse_start(7, "1700000000 123 120 n1\n")
    assert start is not None and (start.job_id, start.array_job_id, start.host) == (
        "123",
        "120",
        "n1",
    )
    assert parse_end("1700000060 143 signal:TERM") == (1700000060.0, 143, "signal:TERM")
    assert parse_end("garbage") is None
    o = combine(7, "1700000000 123 - n1", "1700000060 143 signal:TERM")
    assert o is not None and o.array_job_id is None and o.signal_name == "TERM" and o.elapsed == 60
    assert combine(7, "bad", None) is None


def _record(**kw: object) -> Record:
    rec: dict[str, object] = {
        "id": "20260101-000000-abcdef",
        "name": "t",
        "is_array": True,
        "time_limit": 60,
        "chunks": [{"offset": 0, "indices": "0-4", "job_id": "50"}],
    }
    rec.update(kw)
    return record_from_dict(rec)


# the header of `sacct -P -o <accounting_fields("slurm-wlm 22.05.8")>` (no SLUID before 26.05)
SACCT_HEADER = "|".join(sacct.ACCOUNTING_FIELDS)


def _sacct_lines(job: str, local: int, raw: int, state: str, exit_code: str) -> list[str]:
    """One ended array task as `sacct -P` prints it: the allocation and its batch step."""
    times = "2026-01-01T00:01:40|2026-01-01T00:01:50"
    return [
        f"{job}_{local}|{raw}|{state}|{exit_code}|None|00:00:10|00:00.106||256M|1|n1|{times}|t",
        f"{job}_{local}.batch|{raw}.batch|{state}|{exit_code}||00:00:10|00:00.106|65400K||1|n1|"
        f"{times}|batch",
    ]


def _figures(record: Record, sacct_text: str, cache: Path) -> dict[int, TaskAccounting]:
    """sacct's figures by global task, as a poll cycle gets them: the poller parses the
    `sacct -P` text and hands the ended tasks off, the cycle collects the record's."""
    saved = copy.copy(record)
    saved.set_tasks()  # a saved record has its task count (_record's dict leaves it out)
    acct_store.write_handoff(cache, sacct.parse_accounting(sacct_text))
    return acct_store.collect(saved, {}, cache)


SQ = """\
50_[4]|50|50|4|PENDING|Priority|hpcb:x.0
50_3|53|50|3|RUNNING|None|hpcb:x.0
"""


def test_merge_outcomes_with_squeue() -> None:
    outcomes = {
        0: combine(0, "100 51 50 n1", "105 0 exit"),
        1: combine(1, "100 52 50 n1", "103 3 exit"),
        2: combine(2, "100 52 50 n1", "162 143 signal:TERM"),
        3: combine(3, "100 53 50 n1", None),
    }
    st = task_statuses(_record(), {k: v for k, v in outcomes.items() if v}, slurm.parse_squeue(SQ))
    assert st[0].state is JobState.COMPLETED
    assert (st[1].state, st[1].exit_code) == (JobState.FAILED, 3)
    assert st[2].state is JobState.TIMEOUT and st[2].signal == "TERM"  # at the 60 s limit
    assert st[3].state is JobState.RUNNING and st[3].job_id == "50_3"
    assert st[4].state is JobState.PENDING and st[4].reason == "Priority"
    s = summarise(_record(), st).progress
    assert s.counts == {"COMPLETED": 1, "FAILED": 1, "PENDING": 1, "RUNNING": 1, "TIMEOUT": 1}
    assert s.failed_tasks == "1-2" and not s.done


def test_scheduler_reason_wins_and_forgotten_jobs(tmp_path: Path) -> None:
    text = "\n".join([SACCT_HEADER, *_sacct_lines("50", 1, 51, "OUT_OF_MEMORY", "0:125")])
    figures = _figures(_record(), text + "\n", tmp_path)
    assert list(figures) == [1]
    out = {1: combine(1, "100 51 50 n1", "110 137 exit"), 2: combine(2, "100 52 50 n1", None)}
    squeue = slurm.parse_squeue("")  # the controller has forgotten every task
    st = task_statuses(_record(), {k: v for k, v in out.items() if v}, squeue, accounting=figures)
    # sacct's OUT_OF_MEMORY wins over the .end file's plain exit (its code is kept)
    assert st[1].state is JobState.OUT_OF_MEMORY and st[1].exit_code == 137
    # started, never ended, and the controller forgot it: killed hard -> FAILED
    assert st[2].state is JobState.FAILED and "SIGKILL" in st[2].reason
    # never started and unknown: FAILED (so resubmit --failed reruns it)
    assert st[0].state is JobState.FAILED


def test_unreachable_scheduler_keeps_tasks_open() -> None:
    out = {0: combine(0, "100 51 50 n1", "105 0 exit"), 1: combine(1, "100 52 50 n1", None)}
    st = task_statuses(_record(), {k: v for k, v in out.items() if v}, None)
    assert st[0].state is JobState.COMPLETED
    assert st[1].state is JobState.RUNNING and st[2].state is JobState.UNKNOWN
    assert not st[2].state.terminal


def test_young_jobs_are_pending_and_cancelled_tasks() -> None:
    empty = slurm.parse_squeue("")
    st = task_statuses(_record(), {}, empty, young={"50"})
    assert all(s.state is JobState.PENDING for s in st.values())
    rec = _record(cancelled="2")
    st = task_statuses(rec, {2: combine(2, "100 52 50 n1", "101 143 signal:TERM")}, empty)  # type: ignore[dict-item]
    assert st[2].state is JobState.CANCELLED


def test_unsubmitted_chunk_and_plain_job() -> None:
    rec = _record(chunks=[{"offset": 0, "indices": "0-1", "job_id": None}])
    st = task_statuses(rec, {}, slurm.parse_squeue(""))
    assert st[0].reason == "not submitted yet"
    plain = _record(is_array=False, chunks=[{"offset": 0, "indices": "0", "job_id": "70"}])
    st = task_statuses(plain, {}, slurm.parse_squeue("70|70|70|N/A|RUNNING|None|\n"))
    assert st[0].state is JobState.RUNNING and st[0].job_id == "70"


def test_latest_view_and_report() -> None:
    sq = slurm.parse_squeue("")
    parent = task_statuses(_record(), {0: combine(0, "1 51 50 n", "2 0 exit")}, sq)  # type: ignore[dict-item]
    child_rec = _record(chunks=[{"offset": 0, "indices": "1-4", "job_id": "60"}])
    done = {t: combine(t, "1 61 60 n", "2 0 exit") for t in range(1, 5)}
    child = task_statuses(child_rec, {k: v for k, v in done.items() if v}, sq)
    merged = latest_view(parent, [child])
    assert all(s.state is JobState.COMPLETED for s in merged.values())
    s = summarise(_record(), parent, children={"x": child})
    assert s.latest is not None and s.latest.ok and s.view is s.latest
    assert s.to_dict()["latest"]["counts"] == {"COMPLETED": 5}
    text = "\n".join(status_lines(s))
    assert "1 completed, 4 failed" in text and "after resubmission(s) x: 5 completed" in text
    assert progress_line(s).endswith("5/5 finished")


def test_resubmit_resources() -> None:
    assert new_mem("+50%", 256) == 384
    assert new_mem("8G", 256) == 8192
    assert new_mem(None, 256) is None
    assert new_time("x2", 60) == 120
    assert new_time("02:00:00", 60) == 7200
    with pytest.raises(InputError):
        new_mem("+50%", None)
    with pytest.raises(InputError):
        new_time("xabc", 60)
    groups = resubmit_groups(
        [(1, "FAILED"), (2, "TIMEOUT"), (3, "OUT_OF_MEMORY")], mem=None, time=None
    )
    assert groups == {(False, False): [1], (False, True): [2], (True, False): [3]}
    assert resubmit_groups([(1, "FAILED")], mem="8G", time=None) == {(True, False): [1]}


def test_ten_thousand_tasks_summarised(tmp_path: Path) -> None:
    def state(i: int) -> str:
        return "FAILED" if i >= 9990 else "COMPLETED"

    lines = [SACCT_HEADER]
    for i in range(10000):
        lines += _sacct_lines("90", i, 1000 + i, state(i), "2:0" if i >= 9990 else "0:0")
    rec = _record(chunks=[{"offset": 0, "indices": "0-9999", "job_id": "90"}])
    figures = _figures(rec, "\n".join(lines) + "\n", tmp_path)
    assert len(figures) == 10000
    # squeue forgot the tasks (past MinJobAge), or still lists them as ended (no exit
    # code in its answer): either way sacct's lines give the states and exit codes
    listed = "".join(f"90_{i}|{1000 + i}|90|{i}|{state(i)}|None|hpcb:x.0\n" for i in range(10000))
    for squeue in (slurm.parse_squeue(""), slurm.parse_squeue(listed)):
        st = task_statuses(rec, {}, squeue, accounting=figures)
        s = summarise(rec, st).to_dict()
        assert s["counts"] == {"COMPLETED": 9990, "FAILED": 10} and s["total"] == 10000
        assert s["failed_tasks"] == "9990-9999" and s["failed"][0]["exit_code"] == 2


def test_killed_tasks_get_their_cause_from_the_log(tmp_path: Path) -> None:
    from hpcbridge.tracking.causes import refine_from_log
    from hpcbridge.tracking.summary import TaskStatus

    # OverMemoryKill (jobacct_gather, Slurm 22.05): sacct says FAILED with signal 9, its
    # batch step "CANCELLED by 0"; the task started and never wrote its .end
    alloc, _ = _sacct_lines("50", 1, 51, "FAILED", "0:9")
    step = "50_1.batch|51.batch|CANCELLED by 0|0:9||00:00:02|00:00.001|299028K||1|n1|"
    step += "2026-01-01T00:01:40|2026-01-01T00:01:42|batch"
    figures = _figures(_record(), "\n".join([SACCT_HEADER, alloc, step]) + "\n", tmp_path)
    started = {1: combine(1, "100 51 50 n1", None)}
    st = task_statuses(
        _record(),
        {k: v for k, v in started.items() if v},
        slurm.parse_squeue(""),
        accounting=figures,
    )
    assert (st[1].state, st[1].exit_code, st[1].signal) == (JobState.FAILED, 137, "KILL")
    log = "slurmstepd-n2: error: StepId=51.batch exceeded memory limit (323489792 > 268435456)\n"
    assert refine_from_log(st[1], log).state is JobState.OUT_OF_MEMORY
    cut = (
        "slurmstepd: error: *** JOB 51 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***"
    )
    assert refine_from_log(st[1], cut).state is JobState.TIMEOUT
    assert refine_from_log(st[1], "nothing special").state is JobState.FAILED
    plain = TaskStatus(1, JobState.FAILED, 3, None, "exit code 3")
    assert refine_from_log(plain, log) is plain  # a real exit code is not second-guessed


def test_a_started_task_runs_whatever_an_older_answer_says() -> None:
    """1,000-task run: tasks that had started were shown as pending while the shared
    answer (taken before they started) still said PENDING."""
    pending = slurm.parse_squeue("50_[0-4]|50|50|0-4|PENDING|Priority|\n")
    out = {1: combine(1, "1000 51 50 n1", None), 2: combine(2, "970 52 50 n1", None)}
    started = {k: v for k, v in out.items() if v}
    st = task_statuses(_record(), started, pending, answered_at=990.0)
    assert st[1].state is JobState.RUNNING and st[1].reason == "started"
    assert st[2].state is JobState.RUNNING  # within the clock slack of the answer
    assert st[0].state is JobState.PENDING
    # an answer taken well after the start that still says PENDING: requeued
    st = task_statuses(_record(), started, pending, answered_at=1200.0)
    assert st[1].state is JobState.PENDING
    # a job the (older) answer does not show yet, with a start file: running, not lost
    empty = slurm.parse_squeue("")
    st = task_statuses(_record(), started, empty, answered_at=990.0)
    assert st[1].state is JobState.RUNNING
    st = task_statuses(_record(), started, empty, answered_at=1200.0)
    assert st[1].state is JobState.FAILED and "SIGKILL" in st[1].reason


def test_sacct_figures_give_the_reason_even_for_remembered_tasks() -> None:
    from hpcbridge.scheduler.sacct import parse_accounting

    figures = parse_accounting(
        "JobID|JobIDRaw|State|ExitCode|MaxRSS\n50_1|51|OUT_OF_MEMORY|0:125|\n"
        "50_1.batch|51.batch|OUT_OF_MEMORY|0:125|65400K\n"
    ).tasks
    acct = {1: figures[0]}
    out = {1: combine(1, "100 51 50 n1", "110 137 exit")}
    known = task_statuses(_record(), {k: v for k, v in out.items() if v}, slurm.parse_squeue(""))
    assert known[1].state is JobState.FAILED and known[1].final  # what was remembered
    st = task_statuses(
        _record(),
        {k: v for k, v in out.items() if v},
        slurm.parse_squeue(""),
        known={1: known[1]},
        accounting=acct,
    )
    assert st[1].state is JobState.OUT_OF_MEMORY and st[1].exit_code == 137
    # squeue still lists it as running again (requeued): squeue wins over old figures
    again = slurm.parse_squeue("50_1|51|50|1|RUNNING|None|\n")
    st = task_statuses(_record(), {}, again, accounting=acct)
    assert st[1].state is JobState.RUNNING
