"""Slurm argv builders and output parsers (pure), on outputs captured from the testbed's Slurm 22.05."""

from __future__ import annotations

import logging

import pytest

from hpcbridge.errors import SchedulerError
from hpcbridge.scheduler import slurm
from hpcbridge.scheduler.slurm_pyslurm import job_info_from, major_minor, versions_match
from hpcbridge.scheduler.states import JobState, map_state

# squeue -h -u hpcbtest -t all -o '%i|%A|%F|%K|%T|%r|%k' on the testbed
SQUEUE = """\
4_[4-40%4]|4|4|4-40%4|PENDING|JobArrayTaskLimit|hpcb:x.0
4_0|5|4|0|RUNNING|None|hpcb:x.0
4_1|6|4|1|COMPLETED|None|hpcb:x.0
4_2|7|4|2|FAILED|NonZeroExitCode|hpcb:x.0
4_3|8|4|3|TIMEOUT|TimeLimit|hpcb:x.0
12|12|12|N/A|RUNNING|None|(null)
garbage line
13|13|13|N/A|BRAND_NEW_STATE|None|a|comment|with|bars
"""

CONFIG = """\
Configuration data as of 2026-11-22T01:40:00
AccountingStorageType   = accounting_storage/none
ClusterName             = hpcbtb
MaxArraySize            = 1001
MaxJobCount             = 10000
MinJobAge               = 300 sec
SLURM_VERSION           = 22.05.8
"""


def test_sbatch_argv_and_parse() -> None:
    argv = slurm.sbatch_argv("job-0.sh", extra_args=["--comment=hpcb:x.0"], cluster="c1")
    assert argv == ["sbatch", "--parsable", "-M", "c1", "--comment=hpcb:x.0", "job-0.sh"]
    assert slurm.parse_sbatch("123\n").job_id == "123"
    got = slurm.parse_sbatch("sbatch: warning: something\n456;cluster2\n")
    assert (got.job_id, got.cluster) == ("456", "cluster2")
    with pytest.raises(SchedulerError):
        slurm.parse_sbatch("Submitted batch job\n")


def test_squeue_argv_is_one_call_for_the_user() -> None:
    argv = slurm.squeue_argv(user="alice")
    assert argv[:2] == ["squeue", "-h"]
    assert "-u" in argv and "alice" in argv and "all" in argv
    assert "--json" not in argv  # ignores -j/-t/-u on 22.05
    assert slurm.squeue_argv(job_ids=["1", "2"])[-2:] == ["-j", "1,2"]


def test_parse_squeue(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        res = slurm.parse_squeue(SQUEUE)
    assert res.source == "squeue"
    pending = res.jobs[0]
    assert pending.job_id == "4" and pending.task_ids == tuple(range(4, 41))
    assert pending.state is JobState.PENDING and pending.reason == "JobArrayTaskLimit"
    assert pending.comment == "hpcb:x.0"
    states = [(j.job_id, j.task_ids, j.state) for j in res.jobs[1:5]]
    assert states == [
        ("4", (0,), JobState.RUNNING),
        ("4", (1,), JobState.COMPLETED),
        ("4", (2,), JobState.FAILED),
        ("4", (3,), JobState.TIMEOUT),
    ]
    plain = res.jobs[5]
    assert plain.task_ids is None and plain.job_id == "12" and plain.comment == ""
    odd = res.jobs[6]
    assert odd.state is JobState.UNKNOWN and odd.comment == "a|comment|with|bars"
    assert len(res.warnings) == 1 and "garbage" in res.warnings[0]
    assert "BRAND_NEW_STATE" in caplog.text


def test_accounting_disabled() -> None:
    assert slurm.accounting_disabled("Slurm accounting storage is disabled\n")
    assert not slurm.accounting_disabled("JobID|JobIDRaw|State\n")


def test_parse_scontrol_config() -> None:
    lim = slurm.parse_scontrol_config(CONFIG)
    assert (lim.max_array_size, lim.max_job_count, lim.min_job_age) == (1001, 10000, 300)
    assert lim.accounting is False and lim.slurm_version == "22.05.8"
    on = slurm.parse_scontrol_config(
        CONFIG.replace("accounting_storage/none", "accounting_storage/slurmdbd")
    )
    assert on.accounting is True
    empty = slurm.parse_scontrol_config("")
    assert empty.max_array_size == 1001  # Slurm's defaults when a key is missing


def test_sacctmgr_limits() -> None:
    assert slurm.parse_sacctmgr_limits("alice|acct||100|\nalice|acct|gpu|50|\n") == 50
    assert slurm.parse_sacctmgr_limits("alice|acct|||\n") is None
    assert "user=alice" in slurm.sacctmgr_limits_argv("alice")


def test_scancel_argv() -> None:
    assert slurm.scancel_argv(["86_[3,5-7]", "90"]) == ["scancel", "86_[3,5-7]", "90"]


def test_exit_code() -> None:
    assert slurm.parse_exit_code("3:0") == (3, 0)
    assert slurm.parse_exit_code("0:15") == (0, 15)
    assert slurm.parse_exit_code("") == (None, None)


def test_unreachable_messages() -> None:
    assert slurm.is_unreachable(
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
    )
    assert not slurm.is_unreachable("sbatch: error: Invalid partition name specified")


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("CD", JobState.COMPLETED),
        ("CANCELLED by 2000", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("COMPLETING", JobState.RUNNING),
        ("REQUEUE_HOLD", JobState.REQUEUED),
        ("SPECIAL_EXIT", JobState.FAILED),
        ("what", JobState.UNKNOWN),
    ],
)
def test_state_table(raw: str, state: JobState) -> None:
    assert map_state(raw) is state


def test_state_properties() -> None:
    assert JobState.TIMEOUT.failed and JobState.TIMEOUT.terminal
    assert not JobState.COMPLETED.failed and JobState.COMPLETED.terminal
    assert not JobState.UNKNOWN.terminal and not JobState.RUNNING.terminal


def test_pyslurm_version_matching() -> None:
    assert major_minor("slurm 22.05.8") == (22, 5)
    assert versions_match("22.5.3", "slurm 22.05.8")
    assert not versions_match("25.11.0", "slurm 22.05.8")
    assert not versions_match("", "slurm 22.05.8")


def test_pyslurm_job_conversion() -> None:
    class Job:
        id = 91
        array_id = 86
        array_task_id = 4
        state = "RUNNING"
        state_reason = "None"
        comment = "hpcb:x.0"

    info = job_info_from(Job())
    assert info is not None
    assert (info.job_id, info.task_ids, info.state) == ("86", (4,), JobState.RUNNING)


# ---------------------------------------------------------------- sbatch's own options


def test_log_settings_follow_sbatchs_precedence() -> None:
    from hpcbridge.scheduler.sbatch_options import effective_settings

    script = (
        "#!/bin/sh\n#SBATCH -o from-script.out\n#SBATCH --job-name='my job' --array=0-3%2\n"
        "#SBATCH --error=err-%j\necho hi\n#SBATCH --output=after-the-first-command\n"
    )
    s = effective_settings([], script, {})
    assert (s.output, s.error, s.job_name, s.array) == (
        "from-script.out",
        "err-%j",
        "my job",
        "0-3%2",
    )
    env = {"SBATCH_OUTPUT": "from-env.out", "SBATCH_JOB_NAME": "envname"}
    s = effective_settings([], script, env)
    assert (s.output, s.job_name) == ("from-env.out", "envname")
    s = effective_settings(["-ocli.out", "--chdir", "sub", "--out=last.out"], script, env)
    assert (s.output, s.chdir) == ("last.out", "sub")  # --out: a unique prefix of --output
    s = effective_settings(["-J", "cli", "-t", "10"], "#!/bin/sh\n", {})
    assert (s.job_name, s.time, s.output) == ("cli", "10", None)


def test_log_patterns_are_absolute_with_sbatchs_defaults() -> None:
    from hpcbridge.scheduler.sbatch_options import SbatchSettings, log_patterns

    assert log_patterns(SbatchSettings(), "/w", is_array=False) == ("/w/slurm-%j.out", None)
    assert log_patterns(SbatchSettings(), "/w", is_array=True) == ("/w/slurm-%A_%a.out", None)
    got = log_patterns(
        SbatchSettings(output="o/%x.log", error="/e/%j", chdir="run"), "/w", is_array=True
    )
    assert got == ("/w/run/o/%x.log", "/e/%j")


def test_file_name_patterns_as_slurm_fills_them() -> None:
    from hpcbridge.scheduler.sbatch_options import PatternValues, expand_pattern

    task = PatternValues("21", 7, "27", "wrap", "alice")
    got = expand_pattern("arr-%A_%a-%j-%3a-%x-%u-%%-%n%t%s-%J.out", task)
    assert got == "arr-21_7-27-007-wrap-alice-%-00batch-27.out"
    plain = PatternValues("20", None, None, "job", "alice")
    assert expand_pattern("na-%A_%a-%j-%5j.out", plain) == "na-20_4294967294-20-00020.out"
    assert expand_pattern("/x/one\\-%j.out", plain) == "/x/one-%j.out"  # no substitution
    with pytest.raises(LookupError, match="%N"):
        expand_pattern("log-%N.out", plain)
    with pytest.raises(LookupError, match="%j"):  # an array task that has not started
        expand_pattern("%j.out", PatternValues("21", 7, None, "x", "u"))
