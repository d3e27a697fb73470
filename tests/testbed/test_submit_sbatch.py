"""``hpcbridge sbatch`` (pyxis style) submissions are recorded like any other: ``list``,
``status``, ``watch``, ``logs`` and ``cancel`` work on them, and ``logs`` finds the
file Slurm wrote, wherever the user's own ``-o``/``#SBATCH --output`` sent it."""

from __future__ import annotations

import json
import re

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, wait_until

pytestmark = pytest.mark.testbed

ARRAY_SCRIPT = """\
#!/bin/sh
#SBATCH --job-name=pyx
#SBATCH --array=0-2
#SBATCH --time=00:05:00
#SBATCH --output=out/%x_%A_%a.log
echo "task $SLURM_ARRAY_TASK_ID in $(head -1 /etc/os-release)"
[ "$SLURM_ARRAY_TASK_ID" != 2 ] || exit 3
"""

PLAIN_SCRIPT = """\
#!/bin/sh
echo "plain job $SLURM_JOB_ID arg=$1"
"""


def pyxis_image(tb: Testbed) -> str:
    return tb.image("busybox").ref.replace("/", "#", 1)  # pyxis REGISTRY#IMAGE:TAG


def submitted_job(stdout: str) -> str:
    m = re.fullmatch(r"Submitted batch job (\d+)\n", stdout)
    assert m, stdout
    return m.group(1)


def test_an_sbatch_array_is_listed_watched_and_logged(cluster: Testbed) -> None:
    testbed = cluster
    b = Bridge(testbed, "sbatch-array")
    b.mkdir("out")
    script = b.write("job.sh", ARRAY_SCRIPT, 0o755)
    done = b.ok("sbatch", "-p", "debug", f"--container-image={pyxis_image(testbed)}", str(script))
    job_id = submitted_job(done.stdout)

    listed = b.json("list")["submissions"]
    assert [(s["kind"], s["name"], s["job_ids"], s["tasks"]) for s in listed] == [
        ("sbatch", "pyx", [job_id], "0-2")
    ]
    sub = listed[0]["id"]
    text = b.ok("list").stdout
    assert sub in text and f"jobs {job_id}" in text

    watched = b.run("watch", sub, "--interval", "1", timeout=600)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert f"{sub}: failed tasks 2" in watched.stdout

    st = b.status(sub)
    assert st["counts"] == {"COMPLETED": 2, "FAILED": 1}
    assert st["failed"][0]["task"] == 2 and st["failed"][0]["exit_code"] == 3
    status_text = b.run("status", sub).stdout
    assert "3 task(s): 2 completed, 1 failed" in status_text, status_text

    log = b.ok("logs", sub, "--task", "1").stdout
    assert log.startswith('task 1 in NAME="hpcbridge testbed busybox"'), log
    assert (b.dir / "out" / f"pyx_{job_id}_1.log").read_text() == log  # the user's own file
    followed = b.ok("logs", sub, "--task", "0", "--follow", timeout=120).stdout
    assert followed.startswith("task 0 in ")
    record = json.loads((b.state / "submissions" / sub / "record.json").read_text())
    assert record["schema"] == 2 and record["kind"] == "sbatch"
    assert record["chunks"][0]["output"] == str(b.dir / "out" / "%x_%A_%a.log")


def test_plain_sbatch_logs_default_and_own_pattern_and_cancel(testbed: Testbed) -> None:
    b = Bridge(testbed, "sbatch-plain")
    script = b.write("plain.sh", PLAIN_SCRIPT, 0o755)
    image = f"--container-image={pyxis_image(testbed)}"
    default = submitted_job(b.ok("sbatch", image, str(script), "one").stdout)
    own = b.ok("sbatch", "--parsable", "-o", "run-%j.txt", image, str(script), "two").stdout
    own_job = own.strip()
    assert own_job.isdigit(), own
    subs = {s["job_ids"][0]: s["id"] for s in b.json("list")["submissions"]}
    assert sorted(subs) == sorted([default, own_job])
    assert b.run("watch", *subs.values(), "--interval", "1", timeout=600).returncode == 0
    assert b.ok("logs", subs[default]).stdout == f"plain job {default} arg=one\n"
    assert (b.dir / f"slurm-{default}.out").is_file()  # sbatch's default place, as without us
    assert b.ok("logs", subs[own_job]).stdout == f"plain job {own_job} arg=two\n"
    assert (b.dir / f"run-{own_job}.txt").is_file()
    assert b.status(subs[own_job])["counts"] == {"COMPLETED": 1}

    refused = b.run("sbatch", "-p", "nosuch", image, str(script))
    assert refused.returncode == 5 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "nothing was submitted" in refused.stderr and refused.stdout == ""
    trial = b.run("sbatch", "--test-only", image, str(script))
    assert trial.returncode == 0 and "to start at" in trial.stderr, trial.stderr
    assert len(b.json("list")["submissions"]) == 2  # neither was recorded

    sleepy = b.write("sleepy.sh", "#!/bin/sh\nsleep 300\n", 0o755)
    sleeping = submitted_job(b.ok("sbatch", image, str(sleepy)).stdout)
    sub = next(s["id"] for s in b.json("list")["submissions"] if s["job_ids"] == [sleeping])
    wait_until(lambda: b.status(sub)["counts"].get("RUNNING") == 1, 300, "running")
    cancelled = b.ok("cancel", sub).stdout
    assert cancelled.startswith(f"cancelled {sub}: tasks 0 (scancel ")
    wait_until(lambda: b.status(sub)["done"], 120, "cancelled")
    assert b.status(sub)["counts"] == {"CANCELLED": 1}
