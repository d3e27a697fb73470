"""``hpcbridge doctor`` as the test user on the testbed, including induced failures.

Real parts: the testbed's Apptainer 1.4.5 wrapper on PATH, its Slurm (scontrol,
``srun --mpi=list``), the host's Open MPI ``mpirun``, /proc and the real
filesystems.  Failures are induced without touching what other tests use: a
private mount namespace (bwrap, as the unprivileged user) puts a mode-0600 fuse
device node over /dev/fuse or a 1 MiB tmpfs over the tmp dir.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

SITE = """
[runtime]
flavor = "apptainer"
executable = "apptainer"
version = "1.4.5"

[mpi]
pmi = "{pmi}"
openmpi_pmi = "pmix"
mpich_pmi = "{mpich_pmi}"

[partitions.debug]
default = true
gpu_vendor = "nvidia"
gpus_per_node = 2
default_mpi = "{pmi}"
"""


def _setup(tb: Testbed, d: Path, job: str, mpich_pmi: str = "pmi2") -> dict[str, str]:
    """The site (its default PMI: pmix on 22.05, pmi2 on 26.05) and the job file."""
    (d / "site.toml").write_text(SITE.format(pmi=tb.srun_mpi[1], mpich_pmi=mpich_pmi))
    (d / "data").mkdir(exist_ok=True)
    (d / "job.toml").write_text(
        'name = "preflight"\nimage = "tool.sif"\ncommand = ["true"]\n' + job
    )
    for p in (d / "site.toml", d / "data", d / "job.toml"):
        os.chown(p, tb.user.uid, tb.user.gid)
    return {
        "HPCBRIDGE_SITE_CONFIG": str(d / "site.toml"),
        "HPCBRIDGE_CACHE_DIR": str(d / "cache"),
        "NO_COLOR": "1",
    }


def _doctor(tb: Testbed, d: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    # Other test sessions may restart the shared slurmctld (tb.reconfigure): while it is
    # down the doctor rightly warns; wait for it rather than test that moment.
    deadline = time.monotonic() + 120
    while True:
        res = tb.hpcbridge("doctor", *args, "--json", cwd=d, env=env)
        assert res.stderr == "", res.stderr
        doc = json.loads(res.stdout)
        down = any("cannot read the Slurm configuration" in f["message"] for f in doc["findings"])
        if not down or time.monotonic() > deadline:
            return res.returncode, doc
        time.sleep(3)


def _by_check(doc: dict[str, Any], check: str) -> list[dict[str, str]]:
    return [f for f in doc["findings"] if f["check"] == check]


def _exit_of(doc: dict[str, Any]) -> int:
    """The exit status the findings call for, leaving out free-space findings: the
    machine's free disk changes under the tests (other jobs), the rest must not."""
    order = {"ok": 0, "warn": 1, "fail": 2}
    rest = [f for f in doc["findings"] if " free on " not in f["message"]]
    return max((order[f["status"]] for f in rest), default=0)


def _code_matches(code: int, doc: dict[str, Any]) -> None:
    assert code == {"ok": 0, "warn": 1, "fail": 2}[doc["status"]]


def test_clean_job_is_all_ok(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(
        testbed,
        user_dir,
        f'array = "0-1500"\nbinds = ["{user_dir}/data:/data:ro", "{user_dir}/out/{{task}}:/output"]\n'
        f'[mpi]\ntype = "srun"\nflavor = "{testbed.srun_mpi[0]}"\n',
    )
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    _code_matches(code, doc)
    assert _exit_of(doc) == 0, doc
    checks = {f["check"] for f in doc["findings"]}
    assert {
        "runtime",
        "userns",
        "fuse",
        "cache-dir",
        "tmp-dir",
        "bind",
        "job",
        "mpi",
        "slurm",
    } <= checks
    assert "Apptainer 1.4.5" in _by_check(doc, "runtime")[0]["message"]
    assert f"srun --mpi={testbed.srun_mpi[1]} is available" in _by_check(doc, "mpi")[0]["message"]
    slurm = _by_check(doc, "slurm")[0]["message"]
    assert "MaxArraySize=1001" in slurm and "in 2 sbatch arrays" in slurm
    cache = _by_check(doc, "cache-dir")[0]["message"]
    assert "O_EXCL and atomic rename work" in cache and "created" in cache


def test_login_node_without_runtime_then_the_compute_node_check(
    testbed: Testbed, user_dir: Path
) -> None:
    """Apptainer only on the compute nodes (as the README describes): a warning on the
    login node naming the srun line; that line, run, finds the runtime in the job."""
    tb = testbed
    env = _setup(tb, user_dir, "")
    assert tb.bin_dir is not None
    code, doc = _doctor(tb, user_dir, {**env, "PATH": tb.login_path()})
    (runtime,) = _by_check(doc, "runtime")
    assert runtime["status"] == "warn" and "fine on a login node" in runtime["message"]
    assert runtime["fix"].startswith("check a compute node: srun -N1 -n1 -t 5 hpcbridge doctor")
    assert not _by_check(doc, "userns") and not _by_check(doc, "fuse")
    assert code in (1, 2) and _exit_of(doc) == 1  # a warning, not a failure
    exe = str(tb.repo / ".venv" / "bin" / "hpcbridge")
    done = tb.run_as_user(
        ["srun", "-N1", "-n1", "-t", "5", exe, "doctor", "--json"],
        cwd=user_dir,
        env=env,
        check=False,
        timeout=180,
    )
    (there,) = _by_check(json.loads(done.stdout), "runtime")
    assert there["status"] == "ok" and "Apptainer 1.4.5" in there["message"], done.stderr


def test_missing_bind_source_fails(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, f'binds = ["{user_dir}/no-such-dir:/data"]\n')
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    assert code == 2 and doc["status"] == "fail"
    assert _exit_of(doc) == 2
    bind = _by_check(doc, "bind")[0]
    assert bind["status"] == "fail"
    assert f"{user_dir}/no-such-dir -> /data: source does not exist" in bind["message"]
    assert bind["fix"]


def test_mpi_mismatch_fails(testbed: Testbed, user_dir: Path) -> None:
    # Host mpirun is Open MPI (Debian's default alternative); the image says MPICH.
    env = _setup(testbed, user_dir, '[mpi]\ntype = "mpirun"\nflavor = "mpich"\n')
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    mpi = _by_check(doc, "mpi")[0]
    assert code == 2 and mpi["status"] == "fail"
    assert "is openmpi but the job uses mpich in the image" in mpi["message"]
    # A site default pairing MPICH with pmix: caught against the real srun --mpi=list too.
    env = _setup(testbed, user_dir, '[mpi]\ntype = "srun"\nflavor = "mpich"\n', mpich_pmi="pmix")
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    statuses = [(f["check"], f["status"]) for f in doc["findings"]]
    assert ("mpi", "fail") in statuses and ("job", "fail") in statuses
    assert any('mpi.pmi = "pmi2"' in f["fix"] for f in _by_check(doc, "mpi"))


def test_gpu_vendor_against_partition(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, "[gpu]\ncount = 1\n")
    _, doc = _doctor(testbed, user_dir, env, "job.toml")
    gpu = _by_check(doc, "gpu")
    assert gpu[0]["status"] == "ok" and "--nv" in gpu[0]["message"]
    assert "can only be checked on a GPU node" in gpu[1]["message"]
    env = _setup(testbed, user_dir, '[gpu]\ncount = 1\nvendor = "amd"\n')
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    assert code == 2 and _by_check(doc, "gpu")[0]["status"] == "fail"


def _converted(tb: Testbed, name: str, env: dict[str, str]) -> str:
    """The docker:// reference of a test image, converted into ``env``'s cache."""
    ref = "docker://" + tb.image(name).ref
    res = tb.hpcbridge("convert", ref, env=env, timeout=1200)
    assert res.returncode == 0, res.stderr
    return ref


def test_image_runs_here_and_its_mpi_is_read(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, "")
    ref = _converted(testbed, "busybox", env)
    (user_dir / "job.toml").write_text(
        f'name = "img"\nimage = "{ref}"\ncommand = ["true"]\n[mpi]\ntype = "srun"\n'
        f'flavor = "{testbed.srun_mpi[0]}"\n'
    )
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    image = _by_check(doc, "image")[0]
    assert image["status"] == "ok" and "runs here: apptainer exec" in image["message"]
    mpi = _by_check(doc, "mpi")[0]
    assert mpi["status"] == "warn" and "no MPI library" in mpi["message"]
    _code_matches(code, doc)
    assert _exit_of(doc) == 1


def test_image_with_two_mpis_is_read(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, "")
    # the mpi image is big: convert it once into a cache shared by these tests
    env["HPCBRIDGE_CACHE_DIR"] = str(testbed.user.home / ".cache" / "hpcbridge-doctor-tests")
    ref = _converted(testbed, "mpi", env)
    (user_dir / "job.toml").write_text(
        f'name = "mpi"\nimage = "{ref}"\ncommand = ["/opt/hello"]\n[mpi]\ntype = "srun"\n'
    )
    code, doc = _doctor(testbed, user_dir, env, "job.toml")
    mpi = _by_check(doc, "mpi")
    assert mpi[0]["status"] == "warn"
    assert "the image has mpich and openmpi" in mpi[0]["message"]
    assert "libmpi.so.40" in mpi[0]["message"] or "libmpich.so.12" in mpi[0]["message"]
    _code_matches(code, doc)
    assert _exit_of(doc) == 1


def test_fuse_without_permission_fails(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, "")
    ref = _converted(testbed, "busybox", env)
    (user_dir / "job.toml").write_text(f'name = "f"\nimage = "{ref}"\ncommand = ["true"]\n')
    node = user_dir / "fuse-0600"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(10, 229))  # root-owned, like a locked /dev/fuse
    exe = testbed.repo / ".venv" / "bin" / "hpcbridge"
    res = testbed.run_as_user(
        ["bwrap", "--dev-bind", "/", "/", "--dev-bind", str(node), "/dev/fuse", "--",
         str(exe), "doctor", "job.toml", "--json"],
        cwd=user_dir, env=env, check=False,
    )  # fmt: skip
    doc = json.loads(res.stdout)
    fuse = _by_check(doc, "fuse")[0]
    assert fuse["status"] == "fail" and "mode 0600" in fuse["message"]
    assert "0666" in fuse["fix"]
    assert res.returncode == 2 and doc["status"] == "fail"
    # ... and the real run of the job's image shows it: squashfuse_ll cannot open /dev/fuse
    image = _by_check(doc, "image")[0]
    assert image["status"] == "fail" and "/dev/fuse" in image["message"]


def test_full_tmp_dir_fails(testbed: Testbed, user_dir: Path) -> None:
    env = _setup(testbed, user_dir, "")
    tmp = user_dir / "small-tmp"
    tmp.mkdir()
    os.chown(tmp, testbed.user.uid, testbed.user.gid)
    env["HPCBRIDGE_CACHE_TMP_DIR"] = str(tmp)
    exe = testbed.repo / ".venv" / "bin" / "hpcbridge"
    script = f'dd if=/dev/zero of="{tmp}/fill" bs=64k 2>/dev/null; exec "{exe}" doctor --json'
    res = testbed.run_as_user(
        ["bwrap", "--dev-bind", "/", "/", "--size", str(1024 * 1024), "--tmpfs", str(tmp), "--",
         "/bin/sh", "-c", script],
        cwd=user_dir, env=env, check=False,
    )  # fmt: skip
    doc = json.loads(res.stdout)
    tmp_finding = _by_check(doc, "tmp-dir")
    assert tmp_finding[0]["status"] == "fail"
    assert "the filesystem is full" in tmp_finding[0]["message"]
    assert any("different filesystems" in f["message"] for f in tmp_finding)
    assert res.returncode == 2
    assert not (tmp / "fill").exists()  # the tmpfs lived only in the sandbox


def test_per_user_submit_limit_from_accounting(testbed: Testbed, user_dir: Path) -> None:
    """With accounting on, MaxSubmitJobs comes from sacctmgr (the real slurmdbd)."""
    env = _setup(testbed, user_dir, 'array = "0-11"\n')
    with testbed.reconfigure(accounting=True):
        user = testbed.user.name
        testbed.run(["sacctmgr", "-i", "modify", "user", user, "set", "MaxSubmitJobs=5"])
        try:
            code, doc = _doctor(testbed, user_dir, env, "job.toml")
        finally:
            testbed.run(["sacctmgr", "-i", "modify", "user", user, "set", "MaxSubmitJobs=-1"])
    slurm = _by_check(doc, "slurm")
    assert slurm[0]["status"] == "warn"
    assert "12 tasks exceed your MaxSubmitJobs=5" in slurm[0]["message"]
    assert "hpcbridge watch" in slurm[0]["fix"]
    _code_matches(code, doc)
