"""Doctor checks over plain facts, the parsers, and the probe on real temp directories."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hpcbridge.config import Config, load_config
from hpcbridge.doctor import diagnose, report_dict, worst
from hpcbridge.doctor.facts import (
    BindFacts,
    DirFacts,
    Facts,
    FuseFacts,
    GpuHostFacts,
    HostMpiFacts,
    KernelFacts,
    QuotaFacts,
    RuntimeFacts,
    SlurmFacts,
)
from hpcbridge.doctor.findings import Status
from hpcbridge.doctor.host import (
    check_dir,
    check_dirs,
    check_fuse,
    check_userns,
    parse_lfs_quota,
    parse_quota,
)
from hpcbridge.doctor.job import check_binds, check_gpu, check_mpi, check_slurm
from hpcbridge.doctor.probe import Probe, _try_semantics, parse_mpi_list
from hpcbridge.doctor.runtime import check_runtime, parse_runtime_version
from hpcbridge.job.load import load_job
from hpcbridge.job.spec import JobSpec, MpiSpec
from hpcbridge.scheduler.base import ClusterLimits

SITE = """
[runtime]
executable = "apptainer"
version = "1.4.5"
[mpi]
pmi = "pmix"
openmpi_pmi = "pmix"
mpich_pmi = "pmi2"
[partitions.cpu]
default = true
[partitions.gpu]
gpu_vendor = "nvidia"
gpus_per_node = 4
[partitions.mi]
gpu_vendor = "amd"
"""

RT = RuntimeFacts(
    "apptainer", "apptainer", "1.4.5", "/usr/bin/apptainer", "apptainer version 1.4.5"
)
GOOD_DIR = DirFacts(
    "cache", "/c", "cache.dir", "default", True, False, "ext4", "/", 1, 100 * 2**30, 200 * 2**30,
    True, True,
)  # fmt: skip
LIMITS = ClusterLimits(max_array_size=1001, max_job_count=10000, slurm_version="22.05.8")


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    env = {"HOME": str(tmp_path / "home"), "USER": "u", "HPCBRIDGE_SITE_CONFIG": str(site)}
    return load_config(cwd=tmp_path, environ=env)


def job(tmp_path: Path, extra: str = "") -> JobSpec:
    path = tmp_path / "job.toml"
    path.write_text('name = "j"\nimage = "x.sif"\ncommand = ["true"]\n' + extra)
    return load_job(path)


def statuses(findings: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f.check, f.status.label) for f in findings]


# ------------------------------------------------------------------ runtime / rootless


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apptainer version 1.4.5-1", ("apptainer", (1, 4, 5))),
        ("singularity-ce version 4.1.0-jammy", ("singularity", (4, 1, 0))),
        ("singularity version 3.8.7", ("singularity", (3, 8, 7))),
        ("whatever", None),
    ],
)
def test_parse_runtime_version(text: str, expected: object) -> None:
    assert parse_runtime_version(text) == expected


def test_runtime_checks() -> None:
    assert statuses(check_runtime(RT)) == [("runtime", "ok")]
    missing = check_runtime(replace(RT, path=None))
    assert missing[0].status == Status.WARN and "not on this node's PATH" in missing[0].message
    other = check_runtime(replace(RT, version_output="apptainer version 1.3.1"))
    assert other[0].status == Status.WARN and "1.3.1" in other[0].message
    old = check_runtime(
        replace(RT, configured_version=None, version_output="apptainer version 1.0.3")
    )
    assert old[0].status == Status.WARN and "older" in old[0].message


def test_login_node_without_runtime_is_a_warning_with_the_compute_check() -> None:
    (found,) = check_runtime(replace(RT, path=None, version_output=""))
    assert found.status == Status.WARN
    assert "fine on a login node" in found.message and "skipped" in found.message
    assert found.fix.startswith("check a compute node: srun -N1 -n1 -t 5 hpcbridge doctor")


def test_no_runtime_inside_a_job_fails() -> None:
    (found,) = check_runtime(replace(RT, path=None, in_job="4242"))
    assert found.status == Status.FAIL
    assert "compute node (inside job 4242): jobs cannot run here" in found.message


def test_a_broken_runtime_fails() -> None:
    (found,) = check_runtime(replace(RT, version_output="", error="error while loading libs"))
    assert found.status == Status.FAIL
    assert found.message == (
        "/usr/bin/apptainer is installed but broken: "
        "`/usr/bin/apptainer --version` failed: error while loading libs"
    )


def test_singularity_ce_installed_names_the_flavor_to_set() -> None:
    others = (("/usr/local/bin/singularity", "singularity-ce version 4.1.2-jammy"),)
    (found,) = check_runtime(replace(RT, path=None, others=others))
    assert found.status == Status.WARN
    assert "but /usr/local/bin/singularity is SingularityCE 4.1.2" in found.message
    assert found.fix == (
        'set runtime.flavor = "singularity" and runtime.executable = "/usr/local/bin/singularity"'
    )
    (in_job,) = check_runtime(replace(RT, path=None, others=others, in_job="7"))
    assert in_job.status == Status.FAIL
    # found under the configured name but another flavour than configured
    ce = replace(RT, version_output="singularity-ce version 4.1.2", configured_version=None)
    (mismatch,) = check_runtime(ce)
    assert mismatch.status == Status.WARN and "is SingularityCE 4.1.2" in mismatch.message
    assert mismatch.fix == 'set runtime.flavor = "singularity"'
    (good,) = check_runtime(replace(ce, flavor="singularity"))
    assert good.status == Status.OK
    assert (
        good.message == "SingularityCE 4.1.2 (/usr/bin/apptainer; runtime.flavor = 'singularity')"
    )


def test_without_runtime_the_container_checks_are_skipped(cfg: Config) -> None:
    facts = Facts(
        runtime=replace(RT, path=None),
        kernel=KernelFacts(0, None, None),  # would fail: not checked without a runtime
        fuse=FuseFacts("/dev/fuse", False, False, None, False, None, None),
        dirs=(GOOD_DIR,),
        slurm=SlurmFacts(LIMITS),
    )
    checks = [f.check for f in diagnose(facts, cfg)]
    assert "userns" not in checks and "fuse" not in checks
    assert worst(diagnose(facts, cfg)) == Status.WARN  # exit status 1, not 2


def test_probe_finds_the_other_runtime(tmp_path: Path, cfg: Config) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "singularity"  # stands for an installed SingularityCE: its --version line
    fake.write_text("#!/bin/sh\necho 'singularity-ce version 4.1.2-jammy'\n")
    fake.chmod(0o755)
    env = {"PATH": str(bindir)}
    probe = Probe(environ=env, which=lambda n: str(bindir / n) if (bindir / n).exists() else None)
    rt = probe.runtime(cfg)
    assert rt.path is None and rt.others == ((str(fake), "singularity-ce version 4.1.2-jammy"),)
    assert (
        Probe(environ={**env, "SLURM_JOB_ID": "12"}, which=probe.which).runtime(cfg).in_job == "12"
    )


def test_userns_and_fuse() -> None:
    off = KernelFacts(0, None, None)
    assert check_userns(off, RT)[0].status == Status.FAIL
    assert check_userns(off, replace(RT, suid_starter=True))[0].status == Status.OK
    assert check_userns(KernelFacts(100, 0, None), RT)[0].status == Status.FAIL
    assert check_userns(KernelFacts(100, 1, None), RT)[0].status == Status.OK
    fuse = FuseFacts("/dev/fuse", True, True, 0o600, False, "/usr/bin/squashfuse_ll", None)
    bad = check_fuse(fuse, RT)
    assert bad[0].status == Status.FAIL and "mode 0600" in bad[0].message
    assert "0666" in bad[0].fix
    # without squashfuse, Apptainer unpacks the SIF to a sandbox instead: slower, not fatal
    assert check_fuse(replace(fuse, squashfuse=None), RT)[0].status == Status.WARN
    good = check_fuse(replace(fuse, mode=0o666, usable=True), RT)
    assert good[0].status == Status.OK
    no_tool = check_fuse(replace(fuse, usable=True, squashfuse=None), RT)
    assert no_tool[0].status == Status.WARN and "squashfuse" in no_tool[0].message


# ------------------------------------------------------------------ directories


def test_dir_checks() -> None:
    assert statuses(check_dir(GOOD_DIR)) == [("cache-dir", "ok")]
    full = check_dir(replace(GOOD_DIR, free_bytes=512 * 1024))
    assert full[0].status == Status.FAIL and "512.0 KiB free" in full[0].message
    low = check_dir(replace(GOOD_DIR, free_bytes=3 * 2**30))
    assert low[0].status == Status.WARN
    broken = check_dir(replace(GOOD_DIR, error="cannot write here: the filesystem is full"))
    assert broken[0].status == Status.FAIL and "full" in broken[0].message
    excl = check_dir(replace(GOOD_DIR, excl_ok=False))
    assert excl[0].status == Status.FAIL and "O_EXCL" in excl[0].message
    quota = QuotaFacts("quota", used_kib=9_900_000, soft_kib=10_000_000, hard_kib=None)
    assert check_dir(replace(GOOD_DIR, quota=quota))[0].status == Status.FAIL
    tmp_nfs = check_dir(replace(GOOD_DIR, role="tmp", fstype="nfs4"))
    assert tmp_nfs[0].status == Status.WARN and "nfs4" in tmp_nfs[0].message
    apart = check_dirs([GOOD_DIR, replace(GOOD_DIR, role="tmp", path="/t", device=2)])
    assert apart[-1].status == Status.WARN and "different filesystems" in apart[-1].message


def test_quota_parsers() -> None:
    out = (
        "Disk quotas for user u (uid 1000):\n"
        "     Filesystem  blocks   quota   limit   grace   files   quota   limit   grace\n"
        "      /dev/sda1  5000*   4000    6000  6days      10       0       0\n"
    )
    assert parse_quota(out, "/dev/sda1") == QuotaFacts("quota", 5000, 4000, 6000)
    assert parse_quota(out, "/dev/sdb1") is None
    lfs = "/lustre 123456 0 2000000 - 10 0 0 -\n"
    assert parse_lfs_quota(lfs) == QuotaFacts("lfs quota", 123456, None, 2000000)


def test_probe_semantics_on_a_real_directory(tmp_path: Path) -> None:
    assert _try_semantics(tmp_path) == (True, True, "")
    assert list(tmp_path.iterdir()) == []  # cleaned up
    probe = Probe(mounts=tmp_path / "mounts")
    (tmp_path / "mounts").write_text(
        f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw 0 0\n"
    )
    assert probe.mount_of(tmp_path / "sub") == ("server:/export", str(tmp_path), "nfs4")
    facts = probe.directory("tmp", tmp_path / "new", "cache.tmp_dir", "default")
    assert facts.created and facts.fstype == "nfs4" and facts.excl_ok and facts.rename_ok


def test_probe_fuse_device_is_injectable(tmp_path: Path) -> None:
    fake = tmp_path / "fuse"
    fake.write_text("")
    facts = Probe(fuse_device=str(fake)).fuse(None)
    assert facts.exists and not facts.is_char_device
    assert check_fuse(facts, RT)[0].status == Status.WARN


# ------------------------------------------------------------------ job side


def test_binds(tmp_path: Path) -> None:
    missing = BindFacts("/nope", "/data", False, "job", ("does not exist", "create it"))
    found = check_binds([missing, BindFacts(str(tmp_path), "/in", False, "job")])
    assert statuses(found) == [("bind", "fail")]
    assert "/nope -> /data: source does not exist" in found[0].message
    assert statuses(check_binds([BindFacts("/a/{task}", "/o", True, "job")])) == [("bind", "ok")]


def test_gpu(cfg: Config, tmp_path: Path) -> None:
    assert check_gpu(job(tmp_path), cfg, GpuHostFacts()) == []
    on_gpu = job(tmp_path, '[resources]\npartition = "gpu"\ngpus_per_node = 1\n')
    found = check_gpu(on_gpu, cfg, GpuHostFacts())
    assert [f.status for f in found] == [Status.OK, Status.OK]
    assert "--nv" in found[0].message and "only be checked on a GPU node" in found[1].message
    wrong = job(tmp_path, '[resources]\npartition = "gpu"\n[gpu]\nvendor = "amd"\ncount = 1\n')
    bad = check_gpu(wrong, cfg, GpuHostFacts())
    assert bad[0].status == Status.FAIL and "--rocm" in bad[0].message
    here = check_gpu(on_gpu, cfg, GpuHostFacts(("libcuda.so.1",)))
    assert "libcuda.so.1 present" in here[1].message


def test_mpi(cfg: Config, tmp_path: Path) -> None:
    plugins = SlurmFacts(LIMITS, ("pmix", "none", "cray_shasta", "pmi2"))
    ok_job = job(tmp_path, '[mpi]\ntype = "srun"\nflavor = "openmpi"\n')
    assert statuses(check_mpi(ok_job, cfg, plugins, HostMpiFacts())) == [("mpi", "ok")]
    # load_job refuses this pairing itself; a site default (mpi.mpich_pmi) can still cause it.
    mismatch = replace(ok_job, mpi=MpiSpec(type="srun", pmi="pmix", flavor="mpich"))
    found = check_mpi(mismatch, cfg, plugins, HostMpiFacts())
    assert statuses(found) == [("mpi", "fail")] and 'mpi.pmi = "pmi2"' in found[0].fix
    no_pmix = check_mpi(ok_job, cfg, SlurmFacts(LIMITS, ("none", "pmi2")), HostMpiFacts())
    assert no_pmix[0].status == Status.FAIL and "not available" in no_pmix[0].message
    unknown = job(tmp_path, '[mpi]\ntype = "srun"\n')
    assert Status.WARN in [f.status for f in check_mpi(unknown, cfg, plugins, HostMpiFacts())]
    mpirun = job(tmp_path, '[mpi]\ntype = "mpirun"\nflavor = "mpich"\n')
    ompi = HostMpiFacts("/usr/bin/mpirun", "mpirun (Open MPI) 4.1.4")
    assert check_mpi(mpirun, cfg, plugins, ompi)[0].status == Status.FAIL
    hydra = HostMpiFacts("/usr/bin/mpirun", "HYDRA build details:")
    assert check_mpi(mpirun, cfg, plugins, hydra)[0].status == Status.OK
    assert check_mpi(mpirun, cfg, plugins, HostMpiFacts())[0].status == Status.FAIL


def test_mpi_list_formats() -> None:
    new = "MPI plugin types are...\n\tpmix\n\tnone\n\tpmi2\nspecific pmix plugin versions available: pmix_v4\n"
    assert parse_mpi_list(new) == ("pmix", "none", "pmi2", "pmix_v4")
    two = "MPI plugin types are...\n\tnone\n\tpmix\nspecific pmix plugin versions available: pmix_v3,pmix_v5\n"
    assert parse_mpi_list(two) == ("none", "pmix", "pmix_v3", "pmix_v5")
    cray = "srun: MPI types are...\nsrun: cray_shasta\nsrun: none\nsrun: pmi2\n"
    assert parse_mpi_list(cray) == ("cray_shasta", "none", "pmi2")
    old = "srun: MPI types are...\nsrun: none\nsrun: pmi2\nsrun: openmpi\n"
    assert parse_mpi_list(old) == ("none", "pmi2", "openmpi")


def test_slurm_limits(cfg: Config, tmp_path: Path) -> None:
    assert check_slurm(None, cfg, SlurmFacts(error="down"))[0].status == Status.WARN
    big = job(tmp_path, 'array = "0-2500"\n')
    found = check_slurm(big, cfg, SlurmFacts(LIMITS))
    assert found[0].status == Status.OK and "in 3 sbatch arrays" in found[0].message
    # submit queues what fits and `watch` submits the rest: a warning, not a failure
    huge = job(tmp_path, 'array = "0-19999"\n')
    over_count = check_slurm(huge, cfg, SlurmFacts(LIMITS))
    assert over_count[0].status == Status.WARN and "MaxJobCount=10000" in over_count[0].message
    assert "hpcbridge watch" in over_count[0].fix
    capped = SlurmFacts(replace(LIMITS, max_submit_jobs=500))
    over = check_slurm(big, cfg, capped)
    assert over[0].status == Status.WARN and "MaxSubmitJobs=500" in over[0].message


def test_diagnose_orders_and_summarises(cfg: Config, tmp_path: Path) -> None:
    facts = Facts(
        runtime=RT,
        kernel=KernelFacts(100, None, None),
        fuse=FuseFacts("/dev/fuse", True, True, 0o666, True, "/usr/bin/squashfuse_ll", None),
        dirs=(GOOD_DIR, replace(GOOD_DIR, role="tmp", config_key="cache.tmp_dir")),
        slurm=SlurmFacts(LIMITS, ("pmix",)),
        binds=(BindFacts("/nope", "/d", False, "job", ("does not exist", "create it")),),
    )
    j = job(tmp_path, '[mpi]\ntype = "srun"\nflavor = "openmpi"\n')
    findings = diagnose(facts, cfg, j)
    checks = [f.check for f in findings]
    assert checks[:5] == ["runtime", "userns", "fuse", "cache-dir", "tmp-dir"]
    assert worst(findings) == Status.FAIL
    doc = report_dict(findings)
    assert doc["status"] == "fail"
    assert set(doc["findings"][0]) == {"check", "status", "message", "fix"}


# ------------------------------------------------------------------ image


def test_image_flavors_and_checks() -> None:
    from hpcbridge.doctor.facts import ImageFacts
    from hpcbridge.doctor.image import check_image, image_flavors

    ran = ImageFacts("r", sif="/c/x.sif", digest=DIGEST_X, exec_ok=True, exec_seconds=0.4)
    ompi = replace(
        ran, mpi_libs=("/usr/lib/x86_64-linux-gnu/libmpi.so.40", "/usr/lib/libopen-pal.so.40")
    )
    mpich = replace(ran, mpi_libs=("/usr/lib/x86_64-linux-gnu/libmpich.so.12",))
    intel = replace(ran, mpi_libs=("/opt/intel/mpi/lib/release/libmpi.so.12",))
    assert image_flavors(ompi) == {"openmpi"}
    assert image_flavors(mpich) == image_flavors(intel) == {"mpich"}
    assert image_flavors(ran) == set()
    assert image_flavors(replace(ran, exec_ok=None)) is None
    assert "runs here" in check_image(ran)[0].message
    assert check_image(ImageFacts("r", error="not in the cache"))[0].status == Status.OK
    broken = check_image(replace(ran, exec_ok=False, exec_error="fuse: failed to open /dev/fuse"))
    assert broken[0].status == Status.FAIL and "/dev/fuse" in broken[0].message


DIGEST_X = "sha256:" + "0" * 64


def test_mpi_against_the_image(cfg: Config, tmp_path: Path) -> None:
    from hpcbridge.doctor.facts import ImageFacts

    plugins = SlurmFacts(LIMITS, ("pmix", "pmi2", "none"))
    ran = ImageFacts("r", sif="/c/x.sif", exec_ok=True)
    mpich_image = replace(ran, mpi_libs=("/usr/lib/libmpich.so.12",))
    declared_ompi = job(tmp_path, '[mpi]\ntype = "srun"\nflavor = "openmpi"\n')
    found = check_mpi(declared_ompi, cfg, plugins, HostMpiFacts(), mpich_image)
    assert found[0].status == Status.FAIL and "the image has mpich" in found[0].message
    assert found[0].fix == 'set mpi.flavor = "mpich"'
    unset = job(tmp_path, '[mpi]\ntype = "srun"\n')
    found = check_mpi(unset, cfg, plugins, HostMpiFacts(), mpich_image)
    # not declared: the site default pmix is what submit would use, and MPICH + pmix is broken
    assert [f.status for f in found] == [Status.WARN, Status.FAIL]
    assert 'mpi.pmi = "pmi2"' in found[1].fix
    no_mpi = check_mpi(declared_ompi, cfg, plugins, HostMpiFacts(), ran)
    assert no_mpi[0].status == Status.WARN and "no MPI library" in no_mpi[0].message
