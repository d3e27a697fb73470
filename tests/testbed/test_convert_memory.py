"""A conversion of the >= 2 GB image under a 512 MiB memory limit succeeds (issue 15).

The limit is a cgroup v1 memory controller child (``memory.limit_in_bytes``, this
machine's hierarchy at /sys/fs/cgroup/memory) made for the test and removed after it;
the convert process is put in it before it starts (so mksquashfs is in it too).  The
limit counts the page cache as well: writing 2.2 GB of blobs and 2.3 GB of SIF inside it
works only because that cache is reclaimed, while the processes' own memory stays flat.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from bench import bigimage
from tests.testbed.api import Testbed
from tests.testbed.users import REPO, as_user_argv

pytestmark = pytest.mark.testbed

MEMORY = Path("/sys/fs/cgroup/memory")
LIMIT = 512 << 20
HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if not (MEMORY / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    group = MEMORY / f"hpcbridge-test-convert-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(LIMIT))
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            # only ours can be here (the group is new); leave none behind
            with open(MEMORY / "cgroup.procs", "w") as root:
                root.write(pid)
        group.rmdir()


def test_the_large_image_converts_within_512_mib(
    testbed: Testbed, user_dir: Path, cgroup: Path
) -> None:
    _, digest, ref = bigimage.ensure()
    procs = cgroup / "cgroup.procs"

    def enter() -> None:  # in the child, before exec (still root): join the cgroup
        procs.write_text(str(os.getpid()))

    cache = user_dir / "cache"
    argv = [HPCBRIDGE, "convert", f"docker://{ref}", "--cache-dir", str(cache), "--json"]
    done = subprocess.run(
        as_user_argv(testbed.user, argv),
        env={**testbed.env, "HPCBRIDGE_STATE_DIR": str(user_dir / "state")},
        cwd=testbed.user.home,
        preexec_fn=enter,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    oom = dict(line.split() for line in (cgroup / "memory.oom_control").read_text().splitlines())
    assert oom.get("oom_kill", "0") == "0"
    assert int((cgroup / "memory.limit_in_bytes").read_text()) == LIMIT
    got = json.loads(done.stdout)
    assert got["digest"] == digest and got["cached"] is False
    sif = Path(got["path"])
    assert sif.stat().st_size > 2 << 30
    hello = testbed.run_as_user(
        [str(testbed.apptainer), "exec", str(sif), "/bin/hello"], timeout=300
    )
    assert hello.stdout == "hello from bench-large\n"
