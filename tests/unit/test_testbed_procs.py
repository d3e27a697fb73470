"""The testbed's process bookkeeping: record by PID, stop by PID, zombies count as gone."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hpcbridge import runner
from tests.testbed.procs import PidRegistry, is_alive, proc_info, start_daemon, stop_pids

IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(300)"
)


def _wait_log(log: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.02)


def test_daemon_is_recorded_with_its_own_pid_and_stopped(tmp_path: Path) -> None:
    pids = PidRegistry(tmp_path)
    log = tmp_path / "d.log"
    pid = start_daemon(pids, "sleeper", ["sleep", "300"], log)
    deadline = time.monotonic() + 5
    while (info := proc_info(pid)) is not None and info.comm != "sleep":
        assert time.monotonic() < deadline  # setsid and sh exec, so the PID becomes sleep's
        time.sleep(0.01)
    assert info is not None and info.comm == "sleep"
    assert pids.alive("sleeper") == pid
    assert pids.names() == ["sleeper"]
    assert pids.stop("sleeper") is True
    assert not is_alive(pid)
    assert pids.alive("sleeper") is None
    assert pids.names() == []
    assert pids.stop("sleeper") is False  # idempotent


def test_daemon_output_goes_to_its_log(tmp_path: Path) -> None:
    pids = PidRegistry(tmp_path)
    log = tmp_path / "d.log"
    start_daemon(pids, "py", [sys.executable, "-c", IGNORE_TERM], log)
    _wait_log(log, "ready")
    pids.stop("py", timeout=0.5)


def test_stop_kills_what_ignores_term(tmp_path: Path) -> None:
    pids = PidRegistry(tmp_path)
    log = tmp_path / "d.log"
    pid = start_daemon(pids, "stubborn", [sys.executable, "-c", IGNORE_TERM], log)
    _wait_log(log, "ready")
    killed = stop_pids([pid], timeout=0.5)
    assert killed == [pid]
    assert not is_alive(pid)


def test_zombie_counts_as_gone_and_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    proc = runner.spawn(["true"], stderr_pipe=False)
    deadline = time.monotonic() + 5
    while (info := proc_info(proc.pid)) is not None and info.state != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not is_alive(proc.pid)  # a zombie (or already gone) is not running
    proc.wait(check=False)
    pids = PidRegistry(tmp_path)
    pids.record("ghost", 1)  # PID 1 runs, but with another start time than recorded
    rec = pids.get("ghost")
    assert rec is not None
    rec_path = pids.path("ghost")
    rec_path.write_text(
        rec_path.read_text().replace(f'"starttime": {rec["starttime"]}', '"starttime": 1')
    )
    assert pids.alive("ghost") is None


def test_a_path_is_named_only_as_itself_or_a_parent() -> None:
    from tests.testbed.procs import names_path

    st = "/var/tmp/hpcbridge-testbed"
    assert names_path(f"slurmd -f {st}/etc/slurm.conf", st)
    assert names_path(f"HPCBRIDGE_TESTBED_DIR={st}\0PATH=/bin", st)
    assert names_path(f"x {st}", st)
    assert not names_path(f"docker-registry serve {st}-images-dev/registry.yml", st)
