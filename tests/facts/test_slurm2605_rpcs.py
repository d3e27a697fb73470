"""Facts of Slurm 26.05's per-user RPC rate limit: which RPCs one squeue call sends, read from
the "RPC rate limit exceeded by uid ... with <RPC>" lines slurmctld logs for throttled ones.

With a bucket of 1 token refilled by 1 a second, a few calls in a row get every RPC they
send beyond the first throttled at least once.  ``squeue --only-job-state -j`` sends
REQUEST_JOB_STATE alone; a plain ``squeue -u`` sends REQUEST_FED_INFO,
REQUEST_PARTITION_INFO and REQUEST_JOB_USER_INFO (three tokens a call).  Other sessions
of the test user may add lines, so the assertions are about what must be there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.testbed import fixtures
from tests.testbed.api import Testbed

TINY = {"rl_bucket_size": 1, "rl_refill_rate": 1, "rl_refill_period": 1}


@pytest.fixture(scope="module")
def tb(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    cluster = fixtures.cluster_for(request.config, "26.05")
    with cluster.reconfigure(**TINY) as tiny:
        yield tiny


def throttled_rpcs(tb: Testbed, argv: list[str], calls: int = 4) -> set[str]:
    before = len(tb.rate_limit_events())
    for _ in range(calls):
        done = tb.run_as_user(["squeue", *argv], check=False)
        assert done.returncode == 0 and "rate limit" not in done.stderr.lower(), done.stderr
    events = tb.rate_limit_events()[before:]
    return {e.split(" with ", 1)[1].split()[0] for e in events if " with " in e}


def test_only_job_state_is_one_rpc(tb: Testbed) -> None:
    seen = throttled_rpcs(tb, ["--only-job-state", "-h", "-t", "all", "-j", "1,2"])
    assert "REQUEST_JOB_STATE" in seen, seen


def test_plain_squeue_is_three_rpcs(tb: Testbed) -> None:
    seen = throttled_rpcs(tb, ["-h", "-t", "all", "-u", tb.user.name])
    assert {"REQUEST_FED_INFO", "REQUEST_PARTITION_INFO", "REQUEST_JOB_USER_INFO"} <= seen, seen
