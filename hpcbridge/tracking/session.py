"""Wire configuration, state store, scheduler and poller together for one command."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from hpcbridge.fsutil import xdg_dir
from hpcbridge.scheduler import Scheduler, get_scheduler
from hpcbridge.tracking.poll import Poller
from hpcbridge.tracking.store import Store
from hpcbridge.tracking.tracker import Tracker

if TYPE_CHECKING:
    from hpcbridge.config import Config


def current_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return getpass.getuser()


@dataclass
class Session:
    cfg: Config
    store: Store
    scheduler: Scheduler
    poller: Poller
    tracker: Tracker
    user: str

    @property
    def min_interval(self) -> float:
        return float(self.cfg.polling.min_interval)

    @property
    def max_backoff(self) -> float:
        return max(float(self.cfg.polling.max_backoff), self.min_interval)


def open_session(cfg: Config, scheduler: Optional[Scheduler] = None) -> Session:
    state_dir = cfg.state.dir or xdg_dir("state")
    store = Store(state_dir)  # created when something is written: a refusal leaves no dir
    # scheduler.cluster names the cluster in the records; it is not passed as -M, which
    # only works where slurmdbd knows the name (a single-cluster site needs no -M).
    sched = scheduler or get_scheduler(cfg.scheduler.backend)
    user = current_user()
    poller = Poller(
        store.cache,
        sched,
        user=user,
        min_interval=float(cfg.polling.min_interval),
        max_backoff=float(cfg.polling.max_backoff),
        ensure=store.ensure,
    )
    return Session(cfg, store, sched, poller, Tracker(store, poller), user)
