"""``up`` / ``down`` / ``leftovers`` of a second, throw-away Slurm 26.05 testbed.

Its own state dir and ports (HPCBRIDGE_TESTBED_PORT_OFFSET) and its own cgroup
directories; it shares the cached sid rootfs, the registry and the test user, so the
main testbeds other sessions use are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import config as C
from tests.testbed import fixtures, sid
from tests.testbed.api import Testbed
from tests.testbed.procs import names_path, proc_info

Completed = subprocess.CompletedProcess[str]
DAEMONS = ["munged", "slurmctld", "slurmd-n1", "slurmd-n2"]


@pytest.fixture
def second(request: pytest.FixtureRequest) -> Iterator[tuple[list[str], dict[str, str], Path]]:
    main = fixtures.cluster_for(request.config, "26.05")  # the sid rootfs is built and cached
    state = Path(tempfile.mkdtemp(prefix="hpcbridge-testbed-2605-second-", dir="/var/tmp"))
    py = [str(main.repo / ".venv" / "bin" / "python"), "-m", "tests.testbed"]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "HPCBRIDGE_TESTBED_SLURM": "26.05",
        "HPCBRIDGE_TESTBED_DIR": str(state),
        "HPCBRIDGE_TESTBED_CACHE": str(main.cache_dir),
        "HPCBRIDGE_TESTBED_PORT_OFFSET": "400",
    }
    try:
        yield py, env, state
    finally:
        _run([*py, "down"], env, main.repo, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> Completed:
    """A plain process run: these tests check the testbed itself, not hpcbridge."""
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _naming(state: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info and info.state != "Z" and names_path(" ".join(info.cmdline), str(state)):
                out.append(info.pid)
    return out


def _cgroup_dirs(state: Path) -> list[Path]:
    name = sid.cgroup_name(C.Layout(state))
    return [p for c in sid.CGROUP_CONTROLLERS if (p := sid.CGROUP_ROOT / c / name).exists()]


def test_second_2605_testbed_up_down_leaves_nothing(
    second: tuple[list[str], dict[str, str], Path],
) -> None:
    py, env, state = second
    repo = Path(py[0]).parents[2]
    results: list[Completed] = []
    threads = [
        threading.Thread(target=lambda: results.append(_run([*py, "up", "-q"], env, repo)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert sorted(p.stem for p in (state / "pids").glob("*.pid")) == DAEMONS
    assert len(_naming(state)) == 4
    status = _run([*py, "status"], env, repo)
    assert status.returncode == 0, status.stdout
    assert "nodes: n1=idle n2=idle" in status.stdout
    assert "slurm: 26.05.5" in status.stdout
    conf = (state / "etc" / "slurm.conf").read_text()
    assert "SlurmctldPort=19217" in conf  # 17817 + 1000 (26.05) + 400 (offset)
    assert len(_cgroup_dirs(state)) == len(sid.CGROUP_CONTROLLERS)
    tb = Testbed.from_state_dir(state)
    assert tb.run_as_user(["srun", "-N2", "-n2", "hostname"], timeout=300).stdout.split() in (
        ["n1", "n2"],
        ["n2", "n1"],
    )

    done = _run([*py, "down"], env, repo, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _naming(state) == []
    left = _run([*py, "leftovers"], env, repo)
    assert (left.returncode, left.stderr) == (0, "")
    assert list((state / "pids").glob("*.pid")) == []
    assert _cgroup_dirs(state) == []

    # cached: up again with the state kept, then down
    again = _run([*py, "up", "-q"], env, repo)
    assert again.returncode == 0, again.stderr
    assert len(_naming(state)) == 4
    assert _run([*py, "down"], env, repo).returncode == 0
    assert _naming(state) == []
    assert os.listdir(state / "pids") == []
