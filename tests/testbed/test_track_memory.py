"""A task that allocates past its ``--mem``, on both releases, with accounting:

* Slurm 26.05 (cgroup v1 ``ConstrainRAMSpace``): the kernel kills it in the step's
  memory cgroup and Slurm itself reports OUT_OF_MEMORY; ``status`` shows Slurm's state.
* Slurm 22.05 (``OverMemoryKill``, no cgroups): Slurm says FAILED, signal 9; hpcbridge
  reads the cause from the task's log ("exceeded memory limit").

Either way sacct's figures of the task (MaxRSS, ReqMem, Elapsed; SLUID on 26.05) are
kept with the submission after the poll cycle that saw it end, and ``resubmit
--failed`` asks for more memory than the measured peak.
"""

from __future__ import annotations

import json

import pytest

from tests.testbed.api import Testbed
from tests.testbed.test_track_support import Bridge, wait_until

pytestmark = pytest.mark.testbed

MIB = 2**20
HOG = 'python3 -c "b = bytearray(300 * 2**20); import time; time.sleep(3)"'


def job_text(image: str) -> str:
    command = f'if [ "{{task}}" = 1 ]; then {HOG}; else echo fine; fi'
    return (
        'name = "hog"\n'
        f'image = "docker://{image}"\n'
        f'command = ["sh", "-c", {json.dumps(command)}]\n'
        'array = "0-2"\n'
        '[resources]\ntime = "00:05:00"\nmem = "100M"\n'
    )


def test_over_memory_task_is_out_of_memory(cluster: Testbed) -> None:
    with cluster.reconfigure(accounting=True, mem_limit=True):
        b = Bridge(cluster, "oom")
        sub = b.submit(b.write("hog.toml", job_text(cluster.image("debian-python").ref)))["id"]
        watched = b.run("watch", sub, "--interval", "1", timeout=600)
        assert watched.returncode == 1, watched.stdout + watched.stderr
        st = b.status(sub)
        assert st["counts"] == {"COMPLETED": 2, "OUT_OF_MEMORY": 1}, st
        (failed,) = st["failed"]
        assert failed["task"] == 1 and failed["state"] == "OUT_OF_MEMORY"
        if cluster.release == "26.05":
            assert "task log" not in failed["reason"], failed  # Slurm's own state
        else:
            assert failed["reason"] == "memory limit exceeded (task log)", failed
        text = b.run("status", sub).stdout
        assert "task 1: out_of_memory" in text.lower(), text

        kept = b.state / "submissions" / sub / "accounting.json"

        def have_figures() -> bool:  # sacct may lag: status keeps asking until it answers
            b.run("status", sub)
            return kept.exists() and "1" in json.loads(kept.read_text())

        wait_until(have_figures, 180, "sacct's figures of the task")
        figures = json.loads(kept.read_text())
        hog = figures["1"]
        assert hog["state"] == ("OUT_OF_MEMORY" if cluster.release == "26.05" else "FAILED")
        assert hog["req_mem_bytes"] == 100 * MIB
        assert hog["max_rss_bytes"] >= 80 * MIB, hog  # the peak Slurm measured
        assert hog["elapsed_s"] is not None and hog["node_list"] in cluster.nodes
        assert (hog["sluid"] is not None) == (cluster.release == "26.05")
        assert sorted(figures) == ["0", "1", "2"]

        again = b.json("resubmit", sub, "--failed")
        child = json.loads((b.state / "submissions" / again["id"] / "record.json").read_text())
        (chunk,) = child["chunks"]
        assert chunk["mem"] * MIB > hog["max_rss_bytes"] and chunk["mem"] > 100, chunk
        b.ok("cancel", again["id"])
