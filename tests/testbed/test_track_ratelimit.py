"""Slurm 26.05's per-user RPC rate limit (``rl_enable``) squeezed hard: a bucket of 3
tokens refilled by 1 every 3 s, while three ``watch`` processes, a ``status`` loop and a
``submit`` run.  A throttled Slurm client prints nothing and exits 0; it just sleeps
1, 2, 3 ... s between tries, so hpcbridge sees slowness: a slow answer stands for
PACE_FACTOR times its duration for every process of the user, which lets the bucket
refill.  Nothing fails, nothing reaches the user, no record is lost, and after the
first throttled query the next one waits.

Only where the 26.05 cluster is under test (22.05 has no rate limiting); the default
bucket (30, +2/s) is covered by the polling test on both releases."""

from __future__ import annotations

import time

import pytest

from hpcbridge.tracking.pollplan import PACE_FACTOR
from tests.testbed import fixtures
from tests.testbed.api import Testbed
from tests.testbed.test_track_polling import follow_three, job_ids_of
from tests.testbed.test_track_support import Bridge, read_calls

pytestmark = pytest.mark.testbed

TIGHT = {"rl_bucket_size": 3, "rl_refill_rate": 1, "rl_refill_period": 3}


def check_throttled_run(tb: Testbed) -> None:
    b = Bridge(tb, "ratelimit")
    env, log = b.counting_path()
    events_before = len(tb.rate_limit_events())
    started = time.time()
    got = follow_three(b, env, log, sleep=8)
    for sub, done in got["watch"].items():
        assert done.returncode == 0, (sub, done.stdout, done.stderr)
        assert "6/6 finished" in done.stdout.splitlines()[-1]
    assert got["submit"].returncode == 0, got["submit"].stderr
    every = [*got["watch"].values(), *got["status"], got["submit"]]
    assert all(s.returncode == 0 for s in got["status"])
    for d in every:
        text = (d.stdout + d.stderr).lower()
        assert "rate limit" not in text and "traceback" not in text, d.stderr
    assert len(b.records()) == 4 and {r["state"] for r in b.records()} == {"submitted"}

    events = tb.rate_limit_events()[events_before:]
    queries = [c for c in read_calls(log) if c.is_query]
    jobs = job_ids_of(b, got["ids"])
    slow = [q for q in queries if q.took >= 0.9]  # a throttled client sleeps >= 1 s
    print(
        f"rate limit: {len(events)} throttled RPCs of the test user in "
        f"{time.time() - started:.0f} s; {len(queries)} queries, {len(slow)} slow"
    )
    assert events, "the tight bucket never throttled anything: the test proves nothing"
    assert slow, "no query was throttled"
    for a, nxt in zip(queries, queries[1:]):
        if a.took >= 0.9 and jobs <= set(a.args.split()[-1].split(",")):
            # the slow answer stood: nobody asked again for PACE_FACTOR x its duration
            assert nxt.start - a.start >= 0.95 * PACE_FACTOR * a.took, (a, nxt)
    # hpcbridge's own throttled queries: each slow one at most a handful of times (1+2+3 s)
    job_state = [e for e in events if "REQUEST_JOB_STATE" in e]
    assert len(job_state) <= 3 * len(slow), (job_state, slow)


if "26.05" in fixtures.releases_under_test():

    def test_tight_rate_limit_is_met_with_backoff(request: pytest.FixtureRequest) -> None:
        tb = fixtures.cluster_for(request.config, "26.05")
        assert tb.knobs.rate_limit, tb.slurm_facts
        with tb.reconfigure(**TIGHT):
            check_throttled_run(tb)
