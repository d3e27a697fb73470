"""The shared poll cache's own logic, with a recording stand-in that answers with captured
squeue/sacct text and counts how often it was asked: coverage of every tracked job
of the user, pacing after a slow answer, backoff after errors, sacct only for tasks
that ended.  That it really saves Slurm queries is shown on the testbed with counting
wrappers (tests/testbed/test_track_polling.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import pytest

from hpcbridge.errors import SchedulerUnavailable
from hpcbridge.scheduler import sacct, slurm
from hpcbridge.scheduler.base import (
    AccountingResult,
    ClusterLimits,
    QueryResult,
    Submitted,
    TrialRun,
)
from hpcbridge.scheduler.states import JobState
from hpcbridge.tracking import pollplan
from hpcbridge.tracking.accounting import read_handoff
from hpcbridge.tracking.poll import Poller

HEADER = "JobID|JobIDRaw|State|ExitCode|Reason|Elapsed|TotalCPU|MaxRSS|ReqMem|AllocCPUS|NodeList|Start|End|JobName\n"


class Recording:
    """Answers squeue with ``self.queue`` (lines of jobs asked about) and sacct with
    ``self.acct``; records every call."""

    name = "recording"

    def __init__(self) -> None:
        self.queries: list[tuple[str, ...]] = []
        self.acct_calls: list[tuple[str, ...]] = []
        self.versions = 0
        self.fail = False
        self.slow = 0.0
        self.queue: dict[str, str] = {}
        self.acct = ""
        self.clock: list[float] = []

    def submit(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> Submitted:
        raise NotImplementedError

    def test_only(self, script: Path, *, cwd: Path, extra_args: Sequence[str] = ()) -> TrialRun:
        raise NotImplementedError

    def version(self) -> str:
        self.versions += 1
        return "slurm-wlm 26.05.5"

    def query(
        self,
        job_ids: Sequence[str],
        *,
        user: Optional[str],
        version: str = "",
        queue_view: bool = False,
    ) -> QueryResult:
        self.queries.append(tuple(job_ids))
        if self.fail:
            raise SchedulerUnavailable("Unable to contact slurm controller")
        if self.slow:
            import time

            time.sleep(self.slow)
        text = "".join(v for k, v in self.queue.items() if k in job_ids or queue_view)
        return slurm.parse_squeue(text)

    def accounting(
        self, job_ids: Sequence[str], *, since: Optional[str] = None, version: str = ""
    ) -> AccountingResult:
        self.acct_calls.append(tuple(job_ids))
        return sacct.parse_accounting(HEADER + self.acct)

    def limits(self, user: Optional[str] = None) -> ClusterLimits:
        return ClusterLimits(max_array_size=77, accounting=True)

    def cancel(self, job_ids: Sequence[str]) -> None:
        raise NotImplementedError


def running(job: str) -> str:
    return f"{job}_0|{job}1|{job}|0|RUNNING|None|(null)\n"


def test_one_shared_query_covers_every_watched_submission(tmp_path: Path) -> None:
    sched = Recording()
    sched.queue = {j: running(j) for j in ("5", "6", "7")}
    watchers = [Poller(tmp_path, sched, user="u", min_interval=0.0) for _ in range(3)]
    for p, job in zip(watchers, ("5", "6", "7")):
        assert p.answer([job]).ok
    # each new job joined the shared query: the third asked about all three
    assert sched.queries == [("5",), ("5", "6"), ("5", "6", "7")]
    for _ in range(2):  # steady state: whoever asks first covers the others
        fresh = [p.answer([job], max_age=60.0) for p, job in zip(watchers, ("5", "6", "7"))]
        assert [a.cached for a in fresh] == [True, True, True]
    assert len(sched.queries) == 3
    assert sched.versions == 1  # the release is detected once and kept
    assert json.loads((tmp_path / "slurm.json").read_text())["version"] == "slurm-wlm 26.05.5"


def test_finished_jobs_leave_the_shared_query(tmp_path: Path) -> None:
    tracked = {"5": 0.0, "6": 0.0}
    last = slurm.parse_squeue(running("5") + "6_0|61|6|0|COMPLETED|None|(null)\n")
    kept = pollplan.carry_tracked(tracked, ["9"], last, now=pollplan.RETAIN + 1)
    assert sorted(kept) == ["5", "9"]  # 6 ended and nobody asked for it lately


def test_a_slow_answer_stands_longer(tmp_path: Path) -> None:
    sched = Recording()
    sched.queue = {"5": running("5")}
    sched.slow = 0.2
    p = Poller(tmp_path, sched, user="u", min_interval=0.0)
    first = p.answer(["5"])
    assert first.pace >= pollplan.PACE_FACTOR * 0.2
    again = p.answer(["5"], max_age=0.0)
    assert again.cached and len(sched.queries) == 1  # no second query while it stands


def test_errors_are_shared_and_back_off(tmp_path: Path) -> None:
    sched = Recording()
    sched.fail = True
    p = Poller(tmp_path, sched, user="u", min_interval=1.0, max_backoff=8.0)
    first = p.answer(["5"])
    assert first.error and first.pace == 1.0
    assert p.answer(["5"]).error and len(sched.queries) == 1  # cached error
    assert [pollplan.backoff(n, 1.0, 8.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    data = json.loads((tmp_path / "poll.json").read_text())
    assert data["failures"] == 1 and data["error"]


def test_sacct_only_for_tasks_that_ended(tmp_path: Path) -> None:
    sched = Recording()
    p = Poller(tmp_path, sched, user="u", min_interval=0.0)
    p.limits()  # accounting on
    sched.queue = {"5": "5_[1-2]|5|5|1-2|PENDING|None|(null)\n" + running("5")}
    p.answer(["5"])
    assert sched.acct_calls == []  # nothing ended
    sched.queue = {"5": "5_0|51|5|0|COMPLETED|None|(null)\n5_1|52|5|1|RUNNING|None|(null)\n"}
    sched.acct = "5_0|51|COMPLETED|0:0|None|00:00:05|00:00.1||1G|1|n1|a|b|t\n"
    sched.acct += "5_0.batch|51.batch|COMPLETED|0:0||00:00:05|00:00.1|2048K||1|n1|a|b|batch\n"
    p.answer(["5"])
    # task 0 ended; task 2 was pending and is gone now (ended and purged)
    assert sched.acct_calls == [("5_0", "5_2")]
    assert read_handoff(tmp_path, ["5"])["5_0"].max_rss_bytes == 2048 * 1024
    p.answer(["5"])  # sacct has not reported 5_2 yet: asked again, 5_0 not
    assert sched.acct_calls[-1] == ("5_2",)
    sched.acct = ""
    for _ in range(3):
        p.answer(["5"])
    assert all(c == ("5_2",) for c in sched.acct_calls[1:])


def test_sacct_disabled_is_remembered(tmp_path: Path) -> None:
    sched = Recording()
    p = Poller(tmp_path, sched, user="u", min_interval=0.0)
    p.limits()

    def disabled(job_ids: Sequence[str], **_: object) -> AccountingResult:
        sched.acct_calls.append(tuple(job_ids))
        return AccountingResult((), disabled=True)

    sched.accounting = disabled  # type: ignore[method-assign]
    sched.queue = {"5": running("5")}
    p.answer(["5"])
    sched.queue = {"5": "5_0|51|5|0|COMPLETED|None|(null)\n"}
    p.answer(["5"])
    assert len(sched.acct_calls) == 1
    assert p.cached_limits() is not None and p.cached_limits().accounting is False  # type: ignore[union-attr]
    sched.queue = {"6": "6_0|61|6|0|COMPLETED|None|(null)\n"}
    p.answer(["6"])
    assert len(sched.acct_calls) == 1


def test_transitions_and_sacct_ids() -> None:
    prev = slurm.parse_squeue("9_[3-4]|9|9|3-4|PENDING|None|\n9_1|91|9|1|RUNNING|None|\n")
    now = slurm.parse_squeue("9_4|94|9|4|FAILED|None|\n8|8|8|N/A|COMPLETED|None|\n")
    assert pollplan.transitions(prev, now, ["9", "8"]) == {"9_1", "9_3", "9_4", "8"}
    assert pollplan.transitions(now, now, ["9", "8"]) == set()
    many = [f"9_{i}" for i in range(pollplan.SACCT_TASK_LIST + 1)]
    assert pollplan.sacct_ids([*many, "8"]) == ["8", "9"]
    assert pollplan.sacct_ids(["9_2", "9_1"]) == ["9_1", "9_2"]
    assert pollplan.task_states(now)["9_4"] is JobState.FAILED


def test_limits_cached(tmp_path: Path) -> None:
    p = Poller(tmp_path, Recording(), user="u", min_interval=1)
    assert p.limits().max_array_size == 77 and p.limits().max_array_size == 77
    assert os.stat(tmp_path / "limits.json").st_mode & 0o077 == 0


def test_another_process_holding_the_lock_is_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from hpcbridge.tracking import poll

    monkeypatch.setattr(poll, "LOCK_WAIT", 0.1)
    p = Poller(tmp_path, Recording(), user="u", min_interval=1)
    fd = os.open(tmp_path / "poll.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        got = p.answer(["5"])
    finally:
        os.close(fd)
    assert got.result is None and got.error and "waiting for it" in got.error


def test_sacct_reaches_back_to_the_oldest_submission_of_any_process(tmp_path: Path) -> None:
    sched = Recording()
    seen: list[Optional[str]] = []
    real = sched.accounting

    def accounting(
        job_ids: Sequence[str], *, since: Optional[str] = None, version: str = ""
    ) -> AccountingResult:
        seen.append(since)
        return real(job_ids, since=since, version=version)

    sched.accounting = accounting  # type: ignore[method-assign]
    old = Poller(tmp_path, sched, user="u", min_interval=0.0)
    old.limits()
    sched.queue = {"5": running("5"), "6": running("6")}
    old.answer(["5"], since="2026-01-01T00:00:00")  # a process watching an old submission
    sched.queue = {"5": running("5"), "6": "6_0|61|6|0|COMPLETED|None|(null)\n"}
    Poller(tmp_path, sched, user="u", min_interval=0.0).answer(["6"], since="2026-03-01T00:00:00")
    assert seen == ["2026-01-01T00:00:00"]
