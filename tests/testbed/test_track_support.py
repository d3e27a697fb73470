"""Helpers for the submit/track testbed tests (no tests here).

:class:`Bridge` runs ``hpcbridge`` as the test user in a fresh directory with a
fast site config (polling floor 1 s; the packaged default stays 30 s), its own
state directory and a SIF cache shared by these tests.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional

from tests.testbed.api import Testbed

SITE = """\
[polling]
min_interval = {interval}
max_backoff = {backoff}
"""

# Logs ``<start> <end> <command> <exit code> <arguments>`` of every call, then exits
# with the real client's status (its output passes through untouched).
COUNTER = """\
#!/bin/sh
s=$(date +%s.%N)
{real} "$@"; rc=$?
printf '%s %s %s %s %s\\n' "$s" "$(date +%s.%N)" "{name}" "$rc" "$*" >> {log}
exit $rc
"""

COUNTED = ("squeue", "sacct", "scontrol", "sbatch", "sacctmgr", "scancel")


class Call(NamedTuple):
    """One logged Slurm client call."""

    start: float
    end: float
    name: str
    rc: int
    args: str

    @property
    def took(self) -> float:
        return self.end - self.start

    @property
    def is_query(self) -> bool:
        """A job-state query (``squeue``/``sacct``), not ``--version`` (which sends no RPC)."""
        return self.name in ("squeue", "sacct") and self.args.strip() != "--version"


class Bridge:
    """``hpcbridge`` for one test: its directory, state, site file and environment."""

    def __init__(self, tb: Testbed, name: str, *, interval: float = 1.0) -> None:
        self.tb = tb
        self.dir = tb.user_dir(name)
        self.state = self.dir / "state"
        cache = tb.user.home / ".cache" / "hpcbridge-track-tests"
        if not cache.is_dir():
            tb.run_as_user(["mkdir", "-p", str(cache)])
        self.site = self.write(
            "site.toml", SITE.format(interval=interval, backoff=max(8.0, interval))
        )
        self.env: dict[str, str] = {
            "HPCBRIDGE_SITE_CONFIG": str(self.site),
            "HPCBRIDGE_STATE_DIR": str(self.state),
            "HPCBRIDGE_CACHE_DIR": str(cache),
            "HPCBRIDGE_CONVERT_INSECURE_REGISTRIES": "127.0.0.1:5000",
        }

    def write(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chown(path.parent, self.tb.user.uid, self.tb.user.gid)
        path.write_text(text)
        os.chmod(path, mode)
        os.chown(path, self.tb.user.uid, self.tb.user.gid)
        return path

    def mkdir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.tb.user.uid, self.tb.user.gid)
        return path

    def run(self, *args: str, env: Optional[dict[str, str]] = None, timeout: float = 900) -> Any:
        merged = dict(self.env)
        if env:
            merged.update(env)
        return self.tb.hpcbridge(*args, cwd=self.dir, env=merged, timeout=timeout)

    def ok(self, *args: str, **kw: Any) -> Any:
        done = self.run(*args, **kw)
        assert done.returncode == 0, f"hpcbridge {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, expect: Optional[int] = 0, **kw: Any) -> Any:
        done = self.run(*args, "--json", **kw)
        if expect is not None:
            assert done.returncode == expect, f"{args}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def submit(self, job: Path, *extra: str, **kw: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.json("submit", str(job), *extra, **kw)
        return data

    def status(self, sub_id: str, **kw: Any) -> dict[str, Any]:
        data = self.json("status", sub_id, expect=None, **kw)
        subs: list[dict[str, Any]] = data["submissions"]
        return subs[0]

    def records(self) -> list[dict[str, Any]]:
        subs = self.state / "submissions"
        out = []
        for d in sorted(subs.iterdir()) if subs.is_dir() else []:
            out.append(json.loads((d / "record.json").read_text()))
        return out

    def counting_path(self, log_name: str = "calls.log") -> tuple[dict[str, str], Path]:
        """PATH with counting wrappers around the Slurm clients first, and their log.

        Each wrapper runs the client the cluster's own PATH finds (on 26.05 the testbed's
        sandbox wrapper in ``<state>/sid/bin``), so the counts hold on both releases."""
        log = self.write(log_name, "")
        wrap = self.mkdir(f"counting-bin-{log_name}")
        for name in COUNTED:
            real = shutil.which(name, path=self.tb.env["PATH"])
            assert real, f"{name} not on the testbed's PATH"
            self.write(f"{wrap.name}/{name}", COUNTER.format(name=name, log=log, real=real), 0o755)
        return {"PATH": f"{wrap}:{self.tb.env['PATH']}"}, log


def read_calls(log: Path) -> list[Call]:
    """The calls the counting wrappers logged, in the order they ended."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        start, end, name, rc, args = [*line.split(" ", 4), "", "", "", ""][:5]
        out.append(Call(float(start), float(end), name, int(rc), args))
    return out


def busybox_job(
    b: Bridge,
    name: str,
    command: str,
    *,
    array: str,
    time_limit: str = "00:05:00",
    binds: tuple[str, ...] = (),
    extra: str = "",
) -> Path:
    ref = b.tb.image("busybox").ref
    bind_text = ", ".join(json.dumps(x) for x in binds)
    text = (
        f'name = "{name}"\n'
        f'image = "docker://{ref}"\n'
        f'command = ["sh", "-c", {json.dumps(command)}]\n'
        f'array = "{array}"\n'
        f"binds = [{bind_text}]\n"
        f"{extra}"
        f'[resources]\ntime = "{time_limit}"\n'
    )
    return b.write(f"{name}.toml", text)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def rpc_cost(call: Call) -> int:
    """Tokens of slurmctld's per-user rate limit one client call takes, at most.

    Measured on 26.05 (tests/facts/test_slurm2605_rpcs.py): ``squeue --only-job-state``
    sends one RPC (REQUEST_JOB_STATE); a plain ``squeue`` three (REQUEST_FED_INFO,
    REQUEST_PARTITION_INFO, REQUEST_JOB_[USER_]INFO); the other controller clients are
    counted as three too.  sacct and sacctmgr ask slurmdbd, ``--version`` asks nobody.
    """
    if call.name in ("sacct", "sacctmgr") or call.args.strip() == "--version":
        return 0
    if call.name == "squeue" and "--only-job-state" in call.args.split():
        return 1
    return 3


def lowest_bucket(calls: list[Call], size: float, refill_per_s: float) -> float:
    """The fewest tokens a per-user bucket of ``size`` would have held over these calls."""
    tokens, last, low = size, None, size
    for call in sorted(calls, key=lambda c: c.start):
        if last is not None:
            tokens = min(size, tokens + (call.start - last) * refill_per_s)
        tokens -= rpc_cost(call)
        low = min(low, tokens)
        last = call.start
    return low
