"""Per-task accounting from ``sacct -P`` (pure), on outputs captured from the testbed's
Slurm 26.05 (cgroup OOM kill, SLUID) and 22.05 (OverMemoryKill), and release detection."""

from __future__ import annotations

import pytest

from hpcbridge.scheduler import sacct, slurm, versions
from hpcbridge.scheduler.base import TaskAccounting
from hpcbridge.scheduler.states import JobState

# sacct -P -o <accounting_fields("slurm-wlm 26.05.5")> -j 2600071,2600072: an array whose
# task 1 exits 3 and task 2 goes past --mem=64M (cgroup v1 memory limit), and a plain job
SACCT_2605 = """\
JobID|JobIDRaw|State|ExitCode|Reason|Elapsed|TotalCPU|MaxRSS|ReqMem|AllocCPUS|NodeList|Start|End|SLUID|JobName
2600072|2600072|COMPLETED|0:0|None|00:00:02|00:00.002||256M|1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V5JF00|wrap
2600072.batch|2600072.batch|COMPLETED|0:0||00:00:02|00:00.002|512K||1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V5JF00|batch
2600071_0|2600073|COMPLETED|0:0|None|00:00:02|00:00.002||64M|1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V8A000|wrap
2600071_0.batch|2600073.batch|COMPLETED|0:0||00:00:02|00:00.002|512K||1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V8A000|batch
2600071_1|2600074|FAILED|3:0|None|00:00:01|00:00.001||64M|1|n1|2026-12-06T18:11:19|2026-12-06T18:11:20|s2HNM968V8A001|wrap
2600071_1.batch|2600074.batch|FAILED|3:0||00:00:01|00:00.001|512K||1|n1|2026-12-06T18:11:19|2026-12-06T18:11:20|s2HNM968V8A001|batch
2600071_2|2600075|OUT_OF_MEMORY|0:125|None|00:00:02|00:00.106||64M|1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V8A002|wrap
2600071_2.batch|2600075.batch|OUT_OF_MEMORY|0:125||00:00:02|00:00.106|65400K||1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V8A002|batch
2600071_3|2600071|COMPLETED|0:0|None|00:00:02|00:00.002||64M|1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V5HW00|wrap
2600071_3.batch|2600071.batch|COMPLETED|0:0||00:00:02|00:00.002|512K||1|n1|2026-12-06T18:11:19|2026-12-06T18:11:21|s2HNM968V5HW00|batch
"""

# the same jobs on Slurm 22.05 (jobacct_gather OverMemoryKill: FAILED 0:9, no SLUID field)
SACCT_2205 = """\
JobID|JobIDRaw|State|ExitCode|Reason|Elapsed|TotalCPU|MaxRSS|ReqMem|AllocCPUS|NodeList|Start|End|JobName
5902_1|5905|FAILED|3:0|None|00:00:00|00:00.001||64M|1|n1|2026-12-06T18:11:31|2026-12-06T18:11:31|wrap
5902_1.batch|5905.batch|FAILED|3:0||00:00:00|00:00.001|||1|n1|2026-12-06T18:11:31|2026-12-06T18:11:31|batch
5902_2|5906|FAILED|0:9|None|00:00:02|00:00.001||64M|1|n1|2026-12-06T18:11:31|2026-12-06T18:11:33|wrap
5902_2.batch|5906.batch|CANCELLED by 0|0:9||00:00:02|00:00.001|299028K||1|n1|2026-12-06T18:11:31|2026-12-06T18:11:33|batch
"""


def _by_id(text: str) -> dict[str, TaskAccounting]:
    return {a.job_id: a for a in sacct.parse_accounting(text).tasks}


def test_2605_oom_task_has_slurm_state_max_rss_and_sluid() -> None:
    got = _by_id(SACCT_2605)
    assert sorted(got) == ["2600071_0", "2600071_1", "2600071_2", "2600071_3", "2600072"]
    oom = got["2600071_2"]
    assert (oom.state, oom.exit_code, oom.signal) == (JobState.OUT_OF_MEMORY, 0, 125)
    assert (oom.array_job_id, oom.task, oom.raw_job_id) == ("2600071", 2, "2600075")
    assert oom.max_rss_bytes == 65400 * 1024 and oom.req_mem_bytes == 64 * 2**20
    assert oom.elapsed_s == 2 and oom.total_cpu_s == pytest.approx(0.106)
    assert (oom.alloc_cpus, oom.node_list) == (1, "n1")
    assert (oom.start, oom.end) == ("2026-12-06T18:11:19", "2026-12-06T18:11:21")
    assert oom.sluid == "s2HNM968V8A002" and oom.name == "wrap" and oom.reason == ""
    failed = got["2600071_1"]
    assert (failed.state, failed.exit_code, failed.max_rss_bytes) == (
        JobState.FAILED,
        3,
        512 * 1024,
    )
    plain = got["2600072"]
    assert plain.task is None and plain.array_job_id == "2600072"
    assert plain.req_mem_bytes == 256 * 2**20
    info = oom.job_info()
    assert (info.job_id, info.task_ids, info.state) == ("2600071", (2,), JobState.OUT_OF_MEMORY)


def test_2205_over_memory_kill_is_failed_signal_9_with_the_step_peak() -> None:
    got = _by_id(SACCT_2205)
    killed = got["5902_2"]
    assert (killed.state, killed.exit_code, killed.signal) == (JobState.FAILED, 0, 9)
    assert killed.max_rss_bytes == 299028 * 1024 and killed.sluid is None
    assert got["5902_1"].max_rss_bytes is None  # no step reported any


def test_headerless_text_in_the_given_order_and_odd_lines() -> None:
    text = "7_[2-9]|7|PENDING|0:0|None|00:00:00|00:00:00||1G|1|None assigned|Unknown|Unknown|n|a\n"
    text += "7_1|8|RUNNING|0:0|None|01:02:03|1-00:00:01.5||2000Mc|4|n[1-2]|2026-12-06T18:00:00|Unknown|my|name\n"
    text += "garbage\n"
    result = sacct.parse_accounting(text)
    (task,) = result.tasks  # the pending remainder carries no figures
    assert task.name == "my|name"  # JobName last: a separator inside it survives
    assert task.elapsed_s == 3723 and task.total_cpu_s == pytest.approx(86401.5)
    assert task.req_mem_bytes == 4 * 2000 * 2**20  # per-CPU ReqMem of old releases
    assert task.end is None and task.node_list == "n[1-2]"
    assert len(result.warnings) == 1


def test_round_trip_through_a_dict() -> None:
    for a in sacct.parse_accounting(SACCT_2605).tasks:
        assert TaskAccounting.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    ("text", "base", "want"),
    [("512K", "K", 524288), ("1.5G", "M", 1610612736), ("0", "K", 0), ("", "K", None)],
)
def test_parse_size(text: str, base: str, want: object) -> None:
    assert sacct.parse_size(text, base) == want


def test_argv_asks_sluid_only_where_it_exists() -> None:
    new = sacct.accounting_argv(
        ["5_1", "6"], since="2026-12-05T00:00:00", version="slurm-wlm 26.05.5"
    )
    assert new[:2] == ["sacct", "-P"] and "-n" not in new and "-X" not in new
    assert "SLUID,JobName" in new[new.index("-o") + 1]
    assert new[new.index("-j") + 1] == "5_1,6" and new[-2:] == ["-S", "2026-12-05T00:00:00"]
    old = sacct.accounting_argv(["5"], version="slurm-wlm 22.05.8")
    assert "SLUID" not in old[old.index("-o") + 1]


def test_versions() -> None:
    assert versions.parse_version("slurm-wlm 26.05.5") == (26, 5, 5)
    assert versions.parse_version("slurm 23.11") == (23, 11, 0)
    assert not versions.has_only_job_state("slurm 23.11.4")
    assert versions.has_only_job_state("slurm 23.11.5") and versions.has_only_job_state("24.05.1")
    assert not versions.has_only_job_state("") and not versions.has_sluid("slurm 25.11.2")


def test_squeue_argv_by_release() -> None:
    new = slurm.squeue_jobs_argv(["5", "6"], only_job_state=True)
    assert new[:2] == ["squeue", "--only-job-state"] and new[-2:] == ["-j", "5,6"]
    assert new[new.index("-t") : new.index("-t") + 2] == ["-t", "all"]
    old = slurm.squeue_jobs_argv(["5"], only_job_state=False)
    assert "--only-job-state" not in old and "-u" not in old
    assert slurm.unknown_job("slurm_load_jobs error: Invalid job id specified")
