"""Following submissions until every task has finished: typed snapshots, no printing.

Each poll cycle asks the scheduler once for every watched submission (through
the shared poll cache), submits chunks held back by the per-user limit, and
yields a :class:`WatchSnapshot`.  While the scheduler cannot be reached the wait
doubles up to ``polling.max_backoff``; the cycle after a good answer goes back
to the interval, or waits as long as the shared answer stands when the
scheduler answered slowly (a rate-limited client only shows as slowness).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from hpcbridge.tracking.summary import SubmissionStatus

if TYPE_CHECKING:
    from hpcbridge.tracking.session import Session
    from hpcbridge.tracking.tracker import Cycle


@dataclass(frozen=True)
class WatchSnapshot:
    """What one poll cycle saw."""

    submissions: tuple[SubmissionStatus, ...]
    scheduler_error: Optional[str]  # the scheduler could not be asked this cycle
    next_poll: float  # seconds until the next cycle (after backoff)
    done: bool  # every task finished and nothing is left to submit: the last snapshot

    @property
    def ok(self) -> bool:
        """Every task's latest attempt completed."""
        return all(s.view.ok for s in self.submissions)


def interval_floor(requested: Optional[float], floor: float) -> tuple[float, Optional[str]]:
    """The polling interval to use, and a note when the request was below the site's floor."""
    if requested is None:
        return floor, None
    if requested < floor:
        note = (
            f"--interval {requested:g} s is below the site minimum "
            f"polling.min_interval = {floor:g} s; using {floor:g} s"
        )
        return floor, note
    return requested, None


def watch(
    sess: Session,
    sub_ids: Sequence[str],
    every: float,
    *,
    submit_deferred: Callable[[Session, str, Cycle], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[WatchSnapshot]:
    """Poll every ``every`` seconds until all tasks have finished; one snapshot per cycle."""
    delay = every
    while True:
        cycle = sess.tracker.cycle(sub_ids, max_age=every)
        for i in sub_ids:
            submit_deferred(sess, i, cycle)
        error = cycle.answer.error if cycle.answer is not None else None
        delay = min(delay * 2, sess.max_backoff) if error else every
        if cycle.answer is not None:
            # a slow (rate-limited) or failing scheduler: the shared answer stands longer
            left = cycle.answer.at + cycle.answer.pace - time.time()
            delay = min(max(delay, left), sess.max_backoff)
        summaries = tuple(cycle.summary(i) for i in sub_ids)
        settling = any(t.settling for st in cycle.statuses.values() for t in st.values())
        done = (
            all(s.view.done for s in summaries)
            and not settling
            and not any(sess.store.load(i).deferred for i in sub_ids)
        )
        yield WatchSnapshot(summaries, error, delay, done)
        if done:
            return
        sleep(delay)
