"""Sizing from measured figures: suggestions, resubmission after OUT_OF_MEMORY / TIMEOUT,
``rerun --right-size`` groups, the rounding rules, and distributions (pure)."""

from __future__ import annotations

import pytest

from hpcbridge.errors import InputError
from hpcbridge.report.attempt import MIB
from hpcbridge.report.sizing import (
    after_oom,
    after_timeout,
    round_mem,
    round_time,
    sized_groups,
    suggest_mem,
    suggest_time,
)
from hpcbridge.report.stats import Distribution, percentile, summarise
from hpcbridge.submit.plan import resubmit_sizes, size_groups
from tests.unit.test_report_support import attempt, report_of, story


def test_rounding() -> None:
    assert [round_mem(x) for x in (1, 32, 33, 300, 370, 384, 385, 1100)] == [
        32, 32, 36, 320, 384, 384, 416, 1152,
    ]  # fmt: skip
    assert [round_time(x) for x in (1, 60, 61, 3599, 3601, 4000)] == [
        60, 60, 120, 3600, 3900, 4200,
    ]  # fmt: skip


def test_percentile_is_nearest_rank_and_distribution_counts_known_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50, 95, 99)
    assert percentile([7.0], 99) == 7.0
    d = Distribution.of([3.0, None, 1.0, 2.0])
    assert (d.n, d.min, d.median, d.max) == (3, 1.0, 2.0, 3.0)
    assert Distribution.of([None]).to_dict() == {
        "n": 0, "min": None, "median": None, "p95": None, "max": None,
    }  # fmt: skip
    with pytest.raises(ValueError):
        percentile([], 50)


def test_oom_with_a_peak_above_the_request_asks_for_the_peak_plus_margin() -> None:
    # Slurm 22.05 OverMemoryKill: sacct's MaxRSS is what the task reached before the kill
    need = after_oom(attempt(5, "OUT_OF_MEMORY", peak_mem=308 * MIB, req_mem=256 * MIB))
    assert need is not None and need.value == 384  # 308 * 1.2 = 369.6 -> 384
    assert "sacct peak 308 MiB measured" in need.why and "+ 20%" in need.why


def test_oom_capped_at_the_limit_says_the_need_is_unknown() -> None:
    # a memory cgroup stops the task at its limit: MaxRSS 102220K for --mem=100M
    a = attempt(5, "OUT_OF_MEMORY", peak_mem=102220 * 1024, req_mem=100 * MIB)
    assert not a.above_request
    need = after_oom(a)
    assert need is not None and need.value == 160  # 100 * 1.5 -> 160
    assert "is not above its --mem 100M" in need.why and "100 MiB + 50%" in need.why
    # a sampled peak under the limit (the spike was missed) goes by the request as well
    low = after_oom(attempt(5, "OUT_OF_MEMORY", peak_mem=40 * MIB, req_mem=100 * MIB))
    assert low is not None and low.value == 160


def test_oom_without_a_peak_keeps_the_old_rule_and_says_so() -> None:
    need = after_oom(attempt(5, "OUT_OF_MEMORY", peak_mem=None, req_mem=256 * MIB))
    assert need is not None and need.value == 384 and need.why.startswith("peak unknown")
    assert after_oom(attempt(5, "OUT_OF_MEMORY", peak_mem=None, req_mem=None)) is None


def test_timeout_doubles_the_measured_elapsed_time() -> None:
    need = after_timeout(attempt(9, "TIMEOUT", elapsed=86.0), 60)
    assert need is not None and need.value == 180  # 172 s -> 3 minutes
    assert "stopped after 00:01:26 (limit 00:01:00)" in need.why
    unknown = after_timeout(attempt(9, "TIMEOUT", elapsed=None), 60)
    assert unknown is not None and unknown.value == 120 and "elapsed unknown" in unknown.why


def test_suggestions_of_the_story() -> None:
    r = report_of(story())
    mem, time = r.memory, r.time
    assert (mem.current, mem.samples) == (256, 196)  # completed tasks with a peak
    assert mem.value == 144  # p99 of the peaks (<= 120 MiB) + 20 %, rounded up
    assert [(o.task, o.value) for o in mem.outliers] == [(7, 384)]  # its own 300 MiB + 20 %
    assert mem.saved is not None and mem.reserved is not None and 0 < mem.saved < mem.reserved
    assert time.current == 600 and time.value == 120 and not time.outliers
    groups = sized_groups(range(200), mem, time)
    assert groups[(384, 120)] == [7] and len(groups[(144, 120)]) == 199


def test_a_task_that_only_ran_out_of_memory_is_an_outlier_with_its_oom_size() -> None:
    attempts = [attempt(t, peak_mem=50 * MIB) for t in range(10)]
    attempts.append(attempt(10, "OUT_OF_MEMORY", peak_mem=256 * MIB, req_mem=256 * MIB))
    mem = suggest_mem(attempts)
    assert mem.value == 60 and [(o.task, o.value) for o in mem.outliers] == [(10, 384)]


def test_nothing_measured_means_no_suggestion() -> None:
    attempts = [attempt(t, peak_mem=None, elapsed=None, start=None, end=None) for t in range(3)]
    assert suggest_mem(attempts).value is None
    assert suggest_time(attempts).basis == "no completed task has a measured time"
    assert sized_groups([0, 1, 2], suggest_mem(attempts), suggest_time(attempts)) == {
        (None, None): [0, 1, 2]
    }
    s = summarise(attempts)
    assert s.mem_used.n == 0 and s.core_hours == 0.0  # nothing started: nothing held


def test_summary_failures_and_core_hours() -> None:
    s = report_of(story()).summary
    reasons = {f.reason: f for f in s.failures}
    assert reasons["OUT_OF_MEMORY"].tasks == (7,)
    assert sum(f.attempts for f in s.failures) == 5  # 4 exit codes + 1 OOM
    assert s.core_hours is not None and s.wasted_core_hours is not None
    assert 0 < s.wasted_core_hours < s.core_hours
    assert s.unknown == {"peak_mem": 0, "cpu_time": 0, "elapsed": 0, "node": 0}


def test_unknown_figures_make_sums_unknown_not_smaller() -> None:
    attempts = [attempt(0), attempt(1, "FAILED", elapsed=None, end=None)]
    s = summarise(attempts)
    assert s.core_hours is None and s.wasted_core_hours is None
    assert s.unknown["elapsed"] == 1


def test_resubmit_sizes_use_the_latest_attempt_and_explain() -> None:
    measured = {
        5: attempt(5, "OUT_OF_MEMORY", peak_mem=308 * MIB, req_mem=256 * MIB),
        9: attempt(9, "TIMEOUT", elapsed=86.0, req_time=60),
        3: attempt(3, "FAILED", exit_code=3),
    }
    failed = [(3, "FAILED"), (5, "OUT_OF_MEMORY"), (9, "TIMEOUT")]
    sizes = resubmit_sizes(failed, measured, mem=None, time=None, job_mem=256, job_time=60)
    assert (sizes[3].mem, sizes[3].time, sizes[3].why) == (None, None, ())
    assert (sizes[5].mem, sizes[5].time) == (384, None)
    assert sizes[5].why[0].startswith("task 5: mem 384M: sacct peak 308 MiB measured")
    assert (sizes[9].mem, sizes[9].time) == (None, 180)
    assert [tasks for _, tasks in size_groups(sizes)] == [[3], [5], [9]]


def test_resubmit_sizes_without_measurements_and_with_explicit_flags() -> None:
    failed = [(5, "OUT_OF_MEMORY"), (9, "TIMEOUT")]
    sizes = resubmit_sizes(failed, {}, mem=None, time=None, job_mem=256, job_time=60)
    assert (sizes[5].mem, sizes[9].time) == (384, 120)
    assert "peak unknown" in sizes[5].why[0] and "elapsed unknown" in sizes[9].why[0]
    both = resubmit_sizes(failed, {}, mem="8G", time="02:00:00", job_mem=256, job_time=60)
    assert {(s.mem, s.time, s.why) for s in both.values()} == {(8192, 7200, ())}
    assert size_groups(both) == [((8192, 7200), [5, 9])]
    with pytest.raises(InputError, match="asked for no memory"):
        resubmit_sizes([(5, "OUT_OF_MEMORY")], {}, mem=None, time=None, job_mem=None, job_time=60)
