"""Helpers for the submit/track testbed tests (no tests here).

:class:`Bridge` runs ``hpcbridge`` as the test user in a fresh directory with a
fast site config (polling floor 1 s; the packaged default stays 30 s), its own
state directory and a SIF cache shared by these tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from tests.testbed.api import Testbed

SITE = """\
[polling]
min_interval = {interval}
max_backoff = {backoff}
"""

COUNTER = """\
#!/bin/sh
printf '%s %s %s\\n' "$(date +%s.%N)" "{name}" "$*" >> {log}
exec {real} "$@"
"""


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
        """PATH with counting wrappers around squeue, sacct and scontrol first, and their log."""
        log = self.write(log_name, "")
        wrap = self.mkdir("counting-bin")
        for name in ("squeue", "sacct", "scontrol"):
            real = f"/usr/bin/{name}"
            self.write(f"counting-bin/{name}", COUNTER.format(name=name, log=log, real=real), 0o755)
        return {"PATH": f"{wrap}:{self.tb.env['PATH']}"}, log


def read_calls(log: Path) -> list[tuple[float, str, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        stamp, name, args = [*line.split(" ", 2), "", ""][:3]
        out.append((float(stamp), name, args))
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
