"""The job keys of issue 11: overlays, run mode, local images, run-time binds, bind
options, runtime flags, environment keys, PMI names, srun options (the job model, pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpcbridge.errors import JobSpecError
from hpcbridge.images.refs import SifRef, image_file_format, is_local_image_path, parse_ref
from hpcbridge.job.build import build_job
from hpcbridge.job.load import job_from_dict
from hpcbridge.job.schema import SCHEMA, apply_sets, documented_keys
from hpcbridge.job.spec import JobSpec, RuntimeFlag, bad_pairing
from hpcbridge.job.values import EnvRef, Field, expand, is_run_time, parse_template

JOB_DIR = "/home/alice/project"


def job(**data: Any) -> JobSpec:
    base: dict[str, Any] = {"image": "docker://busybox", "command": ["true"]}
    base.update(data)
    return job_from_dict(base, job_dir=JOB_DIR)


def refused(needle: str, **data: Any) -> str:
    with pytest.raises(JobSpecError) as err:
        job(**data)
    text = str(err.value)
    assert needle in text, text
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ placeholders


def test_env_refs_and_rank_fields_parse() -> None:
    parts = parse_template("/local/$SLURM_JOB_ID/${X}x/r{rank}-$$", "p", env_refs=True)
    assert parts == (
        "/local/",
        EnvRef("SLURM_JOB_ID"),
        "/",
        EnvRef("X"),
        "x/r",
        Field("rank"),
        "-$",
    )
    assert is_run_time(parts)
    assert not is_run_time(parse_template("out/{task:03d}", "p"))
    assert parse_template("$HOME", "p") == ("$HOME",)  # without env_refs a $ is a $
    with pytest.raises(JobSpecError, match=r"write \$\$"):
        parse_template("a$", "p", env_refs=True)
    with pytest.raises(JobSpecError, match="takes no format"):
        parse_template("{rank:03d}", "p")


def test_expand_reproduces_run_time_values() -> None:
    text = "$TMPDIR/r{rank}/{node}/t{task:02d}"
    got = expand(text, 3, rank={"rank": "5", "node": "n2"}, environ={"TMPDIR": "/tmp/j"})
    assert got == "/tmp/j/r5/n2/t03"


# ------------------------------------------------------------------ images


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("x.simg", True), ("./x", True), ("../i/x.sif", True), ("/a/b", True),
        ("~/c.sqsh", True), ("data.squashfs", True), ("busybox", False),
        ("ghcr.io/x/y:1.2", False), ("docker://a/b.sif", False), ("oci:/d", False),
    ],
)  # fmt: skip
def test_local_image_by_form(text: str, local: bool) -> None:
    assert is_local_image_path(text) is local


def test_image_file_format_reads_magic_not_names() -> None:
    sif = b"#!/usr/bin/env run-singularity\n".ljust(32, b"\n") + b"SIF_MAGIC" + bytes(23)
    assert image_file_format(sif) == "sif"
    assert image_file_format(b"hsqs" + bytes(60)) == "squashfs"
    assert image_file_format(b"sqsh" + bytes(60)) == "squashfs"
    assert image_file_format(b"\x53\xef" + bytes(62)) is None  # neither (ext2 magic bytes)
    assert image_file_format(b"") is None
    assert parse_ref("./legacy.simg") == SifRef("./legacy.simg")


def test_job_image_local_by_form_or_existing_file(tmp_path: Path) -> None:
    assert job(image="x.simg").image == f"{JOB_DIR}/x.simg"
    assert job(image="./img/x").image == f"{JOB_DIR}/img/x"
    (tmp_path / "myimage").write_bytes(b"hsqs")
    data = {"image": "myimage", "command": ["true"]}
    spec = job_from_dict(data, job_dir=str(tmp_path))
    assert spec.image == str(tmp_path / "myimage")  # an existing file, not docker.io/library
    assert job_from_dict({**data, "image": "other"}, job_dir=str(tmp_path)).image == "other"


def test_build_job_asks_the_file_system_only_through_is_file() -> None:
    seen: list[str] = []

    def is_file(path: str) -> bool:
        seen.append(path)
        return True

    spec = build_job(
        {"image": "tool", "command": ["true"]},
        job_dir="/j",
        source=None,
        list_inputs=lambda *_: ("/j", []),
        is_file=is_file,
    )
    assert seen == ["/j/tool"] and spec.image == "/j/tool"


# ------------------------------------------------------------------ run mode, pwd


def test_run_mode_and_app() -> None:
    spec = job(command=None, run=["--epochs", "{task}"], app="train", array="0-1")
    assert spec.action == "run" and spec.run == ("--epochs", "{task}") and spec.app == "train"
    assert job(command=None, run=[]).run == ()
    refused("both command and run", run=["x"])
    refused("not a list of arguments", command=None, run="--epochs 3")
    refused("is not an app name", app="a b")


def test_pwd_and_its_old_name_workdir() -> None:
    assert job(pwd="/w/").pwd == "/w" and job(pwd="/w").pwd_key == "pwd"
    old = job(workdir="/w")
    assert old.pwd == "/w" and old.pwd_key == "workdir"
    refused("workdir is the old name of pwd", pwd="/a", workdir="/b")


# ------------------------------------------------------------------ binds


def test_bind_options_image_src_and_id() -> None:
    b = job(binds=["data.sqsh:/d:image-src=/sub,ro", {"src": "/x.sif", "dst": "/y", "id": 4}]).binds
    assert b[0].src == f"{JOB_DIR}/data.sqsh" and b[0].mode == "ro"
    assert b[0].options == ("image-src=/sub",)
    assert b[1].options == ("id=4",) and b[1].mode == "rw"
    refused("is not a bind option", binds=["/a:/b:nosuid"])
    refused("is not a path inside the image", binds=[{"src": "/a", "dst": "/b", "image-src": "x"}])
    refused("is not a SIF descriptor id", binds=[{"src": "/a", "dst": "/b", "id": 0}])


@pytest.mark.parametrize(
    "dst", ["/", "/proc", "/dev", "/sys", "/.singularity.d", "/proc/1", "/.singularity.d/env"]
)
def test_bind_destinations_the_runtime_owns_are_refused(dst: str) -> None:
    refused(f"binds[0].dst = {dst!r} would hide the container's own", binds=[f"/tmp:{dst}"])


def test_bind_below_dev_and_sys_is_allowed() -> None:
    assert job(binds=["/tmp:/dev/shm/x", "/var/tmp:/sys/x"]).binds[0].dst == "/dev/shm/x"


def test_run_time_bind_sources() -> None:
    binds = job(binds=["$TMPDIR/stage:/stage:ro", "${SCRATCH}/r{rank}:/r", "out/{task}:/o"]).binds
    assert binds[0].src == "$TMPDIR/stage" and binds[0].run_time and not binds[0].per_task
    assert binds[1].src == "${SCRATCH}/r{rank}" and binds[1].run_time
    assert binds[2].per_task and not binds[2].run_time and binds[2].src == f"{JOB_DIR}/out/{{task}}"


# ------------------------------------------------------------------ overlays


def test_overlays() -> None:
    o = job(
        overlays=["env.ext3:ro", {"path": "ov/rank{rank}.ext3"}, "/d/t{task}:ro"], array="0-1"
    ).overlays
    assert [x.path for x in o] == [
        f"{JOB_DIR}/env.ext3",
        f"{JOB_DIR}/ov/rank{{rank}}.ext3",
        "/d/t{task}",
    ]
    assert [x.read_only for x in o] == [True, False, True]
    assert o[1].run_time and not o[1].per_task and o[2].per_task and not o[2].run_time


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"overlays": ["a.ext3", "b.ext3"]}, "both writable"),
        ({"overlays": ["a,b.ext3:ro"]}, "contains ','"),
        ({"overlays": ["a.ext3"], "apptainer": {"writable-tmpfs": True}}, "writable-tmpfs"),
        ({"overlays": [{"path": "a", "mode": "rx"}]}, "'rx'"),
    ],
)
def test_bad_overlays(data: dict[str, Any], needle: str) -> None:
    refused(needle, **data)


# ------------------------------------------------------------------ runtime flags


def test_apptainer_flags_by_their_own_names() -> None:
    flags = job(
        apptainer={"contain": True, "workdir": "/local/$SLURM_JOB_ID", "no-mount": ["tmp"],
                   "silent": True, "fakeroot": False, "pids-limit": 5}
    ).apptainer  # fmt: skip
    assert flags == (
        RuntimeFlag("contain", True),
        RuntimeFlag("workdir", "/local/$SLURM_JOB_ID"),
        RuntimeFlag("no-mount", ("tmp",)),
        RuntimeFlag("silent", True),
        RuntimeFlag("pids-limit", 5),
    )


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"no_home": True}, "did you mean 'no-home'"),
        ({"bind": "/a"}, "use binds"),
        ({"pwd": "/a"}, "use pwd"),
        ({"cleanenv": True}, "always runs with --cleanenv"),
        ({"contain": "yes"}, "is not true/false"),
        ({"workdir": "rel"}, "is not an absolute path"),
        ({"no-mount": ["a,b"]}, "contains ','"),
        ({"env": "A=B"}, "use [env]"),
    ],
)
def test_bad_apptainer_flags(flags: dict[str, Any], needle: str) -> None:
    refused(needle, apptainer=flags)


def test_set_types_flags_by_the_flag_table() -> None:
    data = apply_sets(
        {}, ["apptainer.contain=true", "apptainer.workdir=/w", "apptainer.pids-limit=3"]
    )
    assert data["apptainer"] == {"contain": True, "workdir": "/w", "pids-limit": 3}


# ------------------------------------------------------------------ environment


def test_environment_keys() -> None:
    spec = job(
        env={"A": "/tmp/{rank}"},
        host_env=["SCRATCH", "NCCL_*"],
        env_command={"MASTER_ADDR": "scontrol show hostnames | head -n 1"},
        apptainer_env={"APPTAINER_CONTAINLIBS": "/lib/x.so", "APPTAINERENV_LC_ALL": "C"},
    )
    assert spec.env == {"A": "/tmp/{rank}", "LC_ALL": "C"}
    assert spec.host_env == ("SCRATCH", "NCCL_*")
    assert spec.env_command == {"MASTER_ADDR": "scontrol show hostnames | head -n 1"}
    assert spec.apptainer_env == {"APPTAINER_CONTAINLIBS": "/lib/x.so"}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"host_env": ["HOME"]}, "'HOME'"),
        ({"host_env": ["APPTAINER_X"]}, "[apptainer_env]"),
        ({"env": {"A": "1"}, "host_env": ["A"]}, "[env] sets too"),
        ({"env": {"A": "1"}, "env_command": {"A": "echo"}}, "also set in [env]"),
        ({"apptainer_env": {"APPTAINER_BIND": "/a"}}, "use binds"),
        ({"apptainer_env": {"APPTAINER_CONTAINLIB": "/a"}}, "APPTAINER_CONTAINLIBS"),
        ({"apptainer_env": {"FOO": "1"}}, "not an APPTAINER_"),
        ({"env": {"A": "1"}, "apptainer_env": {"APPTAINERENV_A": "2"}}, "also set in [env]"),
        ({"env": {"X": "a\x1fb"}}, "U+001F"),
    ],
)
def test_bad_environment_keys(data: dict[str, Any], needle: str) -> None:
    refused(needle, **data)


# ------------------------------------------------------------------ MPI


def test_any_pmi_name_and_srun_options() -> None:
    for pmi in ("cray_shasta", "none", "pmix_v4", "pmi2"):
        assert job(mpi={"type": "srun", "pmi": pmi}).mpi.pmi == pmi
    spec = job(mpi={"type": "srun", "srun_options": ["--cpu-bind=mask_cpu:0x1,0x2", "--exact"]})
    assert spec.mpi.srun_options == ("--cpu-bind=mask_cpu:0x1,0x2", "--exact")
    refused("not an srun MPI plugin name", mpi={"type": "srun", "pmi": "PMI 2"})
    refused("use mpi.pmi", mpi={"type": "srun", "srun_options": ["--mpi=pmix"]})
    refused("not an srun option", mpi={"type": "srun", "srun_options": ["-m", "block"]})
    refused('applies only to type = "srun"', mpi={"type": "mpirun", "srun_options": ["--exact"]})
    assert bad_pairing("mpich", "pmix_v4") and bad_pairing("openmpi", "pmi2")
    assert bad_pairing("openmpi", "cray_shasta") is None


# ------------------------------------------------------------------ the key table


def test_every_key_is_documented_once() -> None:
    keys = documented_keys()
    assert len(keys) == len(set(keys))
    assert {
        "run",
        "app",
        "pwd",
        "overlays",
        "host_env",
        "env_command.NAME",
        "apptainer.FLAG",
    } <= set(keys)
    assert set(SCHEMA) == {k.split(".")[0] for k in keys}
