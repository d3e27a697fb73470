"""``up`` / ``down`` / ``leftovers`` of a second, throw-away testbed next to the main one.

It has its own state dir and ports (HPCBRIDGE_TESTBED_PORT_OFFSET) and shares the
cache, the registry and the test user, so the main testbed other sessions use is
never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.api import Testbed
from tests.testbed.procs import names_path, proc_info

Completed = subprocess.CompletedProcess[str]


@pytest.fixture
def second(testbed: Testbed) -> Iterator[tuple[list[str], dict[str, str], Path]]:
    state = Path(tempfile.mkdtemp(prefix="hpcbridge-testbed-second-", dir="/var/tmp"))
    py = [str(testbed.repo / ".venv" / "bin" / "python"), "-m", "tests.testbed"]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "HPCBRIDGE_TESTBED_DIR": str(state),
        "HPCBRIDGE_TESTBED_CACHE": str(testbed.cache_dir),
        "HPCBRIDGE_TESTBED_PORT_OFFSET": "400",
    }
    try:
        yield py, env, state
    finally:
        _run([*py, "down"], env, testbed.repo, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> Completed:
    """A plain process run: these tests check the testbed itself, not hpcbridge."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _naming(state: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info and info.state != "Z" and names_path(" ".join(info.cmdline), str(state)):
                out.append(info.pid)
    return out


def test_concurrent_up_then_down_leaves_nothing(
    testbed: Testbed, second: tuple[list[str], dict[str, str], Path]
) -> None:
    py, env, state = second
    results: list[Completed] = []

    def up() -> None:
        results.append(_run([*py, "up", "-q"], env, testbed.repo, timeout=600))

    threads = [threading.Thread(target=up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    # one set of daemons, not two: the second `up` waited on the flock and found them running
    assert sorted(p.stem for p in (state / "pids").glob("*.pid")) == [
        "munged",
        "slurmctld",
        "slurmd-n1",
        "slurmd-n2",
    ]
    assert len(_naming(state)) == 4
    status = _run([*py, "status"], env, testbed.repo)
    assert status.returncode == 0, status.stdout
    assert "nodes: n1=idle n2=idle" in status.stdout
    assert (state / "env.sh").read_text().count("SLURM_CONF") == 1

    done = _run([*py, "down"], env, testbed.repo, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _naming(state) == []
    left = _run([*py, "leftovers"], env, testbed.repo)
    assert left.returncode == 0, left.stderr
    assert list((state / "pids").glob("*.pid")) == []

    # cached: up again with the state kept, then down
    again = _run([*py, "up", "-q"], env, testbed.repo, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(_naming(state)) == 4
    assert _run([*py, "down"], env, testbed.repo, timeout=300).returncode == 0
    assert _naming(state) == []
