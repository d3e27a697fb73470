"""pyxis-style steps beyond the corpus: ``hpcbridge srun`` from the login node (with a
terminal), enroot images saved by one job and run by the next (converted by content),
and named containers through both clusters' Apptainer (22.05: the bwrap wrapper;
26.05: the sid Apptainer inside the daemons' pivot_root sandbox)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_pyxis_corpus import REGISTRY, environment, recorded_states

pytestmark = pytest.mark.testbed

BUSYBOX = f"{REGISTRY.replace('/', '#', 1)}/busybox:1.35"  # pyxis' REGISTRY#IMAGE form
PYTHON = f"{REGISTRY.replace('/', '#', 1)}/debian-python:bookworm"


def write(tb: Testbed, path: Path, text: str) -> Path:
    path.write_text(text)
    os.chown(path, tb.user.uid, tb.user.gid)
    return path


def sbatch(tb: Testbed, base: Path, env: dict[str, str], *args: str) -> str:
    done = tb.hpcbridge("sbatch", *args, cwd=base, env=env, timeout=1800)
    m = re.search(r"^Submitted batch job (\d+)$", done.stdout, re.M)
    assert done.returncode == 0 and m, done.stdout + done.stderr
    return m.group(1)


def finished(tb: Testbed, base: Path, env: dict[str, str], job: str) -> tuple[str, str]:
    tb.wait_for_jobs([job], timeout=900)
    log = base / f"slurm-{job}.out"
    return recorded_states(tb, env)[job], log.read_text() if log.exists() else ""


def test_hpcbridge_srun_from_the_login_node(testbed: Testbed) -> None:
    base = testbed.user_dir("pyxis-srun")
    env = environment(testbed, base / "state")
    plain = testbed.hpcbridge(
        "srun", "-N2", "--ntasks-per-node=1", f"--container-image={BUSYBOX}",
        "sh", "-c", 'echo "$(hostname): $HPCB_IMAGE in $(pwd)"',
        cwd=base, env=env, timeout=900,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert sorted(plain.stdout.splitlines()) == [
        "n1: busybox in /work/not-in-layers",
        "n2: busybox in /work/not-in-layers",
    ]
    # what the dockerd:// refusal suggests: `docker save` to a tarball, give its path
    archive = base / "img.tar"
    archive.write_bytes(testbed.image("busybox").docker_archive.read_bytes())
    os.chown(archive, testbed.user.uid, testbed.user.gid)
    saved = testbed.hpcbridge(
        "srun", "--container-image=./img.tar", "sh", "-c", 'echo "archive: $HPCB_IMAGE"',
        cwd=base, env=env, timeout=900,
    )  # fmt: skip
    assert saved.stdout == "archive: busybox\n", saved.stdout + saved.stderr
    refused = testbed.hpcbridge(
        "srun", "--container-image=dockerd://busybox:1.35", "true", cwd=base, env=env
    )
    assert refused.returncode == 3 and "--container-image=./img.tar" in refused.stderr
    # --pty: srun needs a terminal; script(1) gives this command one
    inner = shlex.join(
        [str(testbed.repo / ".venv/bin/hpcbridge"), "srun", f"--container-image={PYTHON}",
         "--pty", "python3", "-c", "import os, sys; print('tty:', os.isatty(0), sys.version_info[0])"]
    )  # fmt: skip
    pty = testbed.run_as_user(
        ["script", "-qec", inner, "/dev/null"], cwd=base, env=env, timeout=900
    )
    assert "tty: True 3" in pty.stdout, pty.stdout + pty.stderr


def test_a_saved_container_is_the_next_jobs_image(testbed: Testbed) -> None:
    base = testbed.user_dir("pyxis-save")
    env = environment(testbed, base / "state")
    write(
        testbed, base / "build.sh",
        f"#!/bin/bash\n#SBATCH -n 1\nsrun --container-image={PYTHON} --container-name=env "
        "--container-save=$PWD/env.sqsh sh -c 'echo built-in-job-1 > /opt/marker'\n",
    )  # fmt: skip
    state, log = finished(testbed, base, env, sbatch(testbed, base, env, "build.sh"))
    assert state == "COMPLETED", log
    saved = base / "env.sqsh"
    assert saved.read_bytes()[:4] == b"hsqs" and "saved container env to" in log
    write(
        testbed, base / "use.sh",
        "#!/bin/bash\n#SBATCH -n 1\nsrun --container-image=./env.sqsh "
        "sh -c 'echo \"$(cat /opt/marker) in $(pwd) as $HPCB_IMAGE\"'\n",
    )  # fmt: skip
    dry = testbed.hpcbridge("sbatch", "--dry-run", "use.sh", cwd=base, env=env, timeout=900)
    assert "converted to a SIF" not in dry.stdout and "an enroot squashfs" in dry.stdout
    state, log = finished(testbed, base, env, sbatch(testbed, base, env, "use.sh"))
    assert state == "COMPLETED", log
    # converted at submit (by content), the WorkingDir kept in /etc/rc, the image's env kept
    assert log.strip() == "built-in-job-1 in /srv/app as debian-python", log
    again = testbed.hpcbridge("sbatch", "--dry-run", "use.sh", cwd=base, env=env, timeout=900)
    assert re.search(r"^#   digest sha256:[0-9a-f]{64}, SIF /\S+\.sif$", again.stdout, re.M)


NAMED = """#!/bin/bash
#SBATCH -N 2
#SBATCH --ntasks-per-node=1
srun --container-image={image} --container-name=state sh -c 'echo "from step 1 on $(hostname)" > /etc/note'
srun --container-name=state:no_exec sh -c 'cat /etc/note'
srun -N1 -n1 --container-name=fresh:create --container-image={image} sh -c 'test -e /etc/note || echo fresh has none'
srun -N1 -n1 --container-name=nothere:exec true || echo "exec refused"
"""


def test_named_containers_on_both_clusters(cluster: Testbed, cluster_dir: Path) -> None:
    env = environment(cluster, cluster_dir / "state")
    write(cluster, cluster_dir / "named.sh", NAMED.format(image=BUSYBOX))
    job = sbatch(cluster, cluster_dir, env, "named.sh")
    state, log = finished(cluster, cluster_dir, env, job)
    assert state == "COMPLETED", log
    assert sorted(re.findall(r"^from step 1 on (n\d)$", log, re.M)) == ["n1", "n2"], log
    assert "fresh has none" in log and "exec refused" in log
    assert "no step of this job runs container nothere" in log
    assert not Path(f"/tmp/hpcb-containers-{cluster.user.uid}/job-{job}").exists()
