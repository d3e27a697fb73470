"""The run-time srun shim and step program (bash), run with stand-in srun/apptainer.

The shim prints the command it would run (``HPCB_PYXIS_PRINT=1``); the step
program runs a fake ``apptainer`` that prints its arguments.  The shim must read
a line the way the Python side reads it at submit time (same option split, same
mount grammar and errors, same working directory rule), whatever bash builds
the line from.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from hpcbridge.config import load_config
from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import interpret
from hpcbridge.pyxis.shim import ShimImage, render_shim, shim_context, shim_key, step_program
from hpcbridge.pyxis.srun import split_srun
from hpcbridge.pyxis.values import workdir_in

STEP_FIELDS = [
    "rt", "image", "sub", "name", "flag", "save", "dir", "rw", "workdir",
    "envnames", "mpienv", "compat", "n",
]  # fmt: skip
FAKE_HPCBRIDGE = """#!/bin/sh
# stand-in: convert -q --json REF (as hpcbridge prints it)
[ "$4" = docker://mirror:5000/team/late:1 ] || exit 4
printf '{\\n  "ref": "%s",\\n  "path": "/c/late.sif",\\n  "workdir": "/late",\\n  "labels": {}\\n}\\n' "$4"
"""
FAKE_APPTAINER = """#!/bin/bash
# stand-in: 'build --sandbox DIR IMG' makes DIR; exec/run print what they got
[ "$1" = -s ] && shift
if [ "$1" = build ]; then
  if [ "$2" = --sandbox ]; then mkdir -p "$3/etc" "$3/usr"; echo "$4" >"$3/.from"; exit 0; fi
  cp -r "$3" "$2"; exit 0
fi
printf 'APPTAINER'; printf ' [%s]' "$@"; printf '\\n'
printf 'ENV %s\\n' "APPTAINERENV_FOO=${APPTAINERENV_FOO-unset}" "OMPI_X=${OMPI_X-unset}" \
  "APPTAINER_BIND=${APPTAINER_BIND-unset}"
"""


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, object]:
    """A cwd with data, fake srun + apptainer on PATH, an image table, the rendered shim."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\necho real srun "$@"\n')
    (bin_dir / "apptainer").write_text(FAKE_APPTAINER)
    (bin_dir / "hpcbridge").write_text(FAKE_HPCBRIDGE)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "img.sqsh").write_bytes(b"hsqs" + b"\0" * 60)
    cfg = load_config(
        {
            "mpi.openmpi_env": {"OMPI_X": "1"},
            "mpi.mpich_env": {},
            "convert.rewrite": ["late.example/=mirror:5000/"],
        },
        environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")},
    )
    images = [
        ShimImage("registry.example/team/app:1", "/c/app.sif", "/workspace", ""),
        ShimImage(str(work / "img.sqsh"), "/c/sqsh.sif", "/srv", ""),
    ]
    shim = tmp_path / "srun-shim"
    hpcbridge = str(bin_dir / "hpcbridge")
    shim.write_text(render_shim(shim_context(cfg, images, "nvidia", hpcbridge), cfg))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HPCB_PYXIS_PRINT": "1",
        "TMPDIR": str(tmp_path / "tmp"),
    }
    return {"shim": shim, "cwd": work, "env": env, "bin": bin_dir, "cfg": cfg, "tmp": tmp_path}


def run_shim(
    world: dict[str, object], args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(world["shim"]), *args],
        cwd=str(world["cwd"]),
        env={**world["env"], **env},  # type: ignore[dict-item]
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def printed(world: dict[str, object], args: list[str], **env: str) -> list[str]:
    done = run_shim(world, args, **env)
    assert done.returncode == 0, done.stderr
    return shlex.split(done.stdout)


def step_args(argv: list[str]) -> tuple[list[str], dict[str, str], list[str], list[str]]:
    """(srun part, named step fields, runtime options, command) of a printed line."""
    at = argv.index("hpcb-step")
    fields = argv[at + 1 : at + 14]
    names = STEP_FIELDS
    step = dict(zip(names, fields))
    n = int(step["n"])
    opts = argv[at + 14 : at + 14 + n]
    assert argv[at + 14 + n] == "--"
    return argv[: at - 3], step, opts, argv[at + 15 + n :]


def test_a_step_without_container_options_runs_srun_as_written(world: dict[str, object]) -> None:
    args = ["-N2", "--ntasks-per-node", "4", "--mpi=pmix", "hostname", "--container-image=x"]
    assert printed(world, args) == [str(world["bin"] / "srun"), *args]


def test_options_split_like_the_python_reader(world: dict[str, object]) -> None:
    args = [
        "--mpi=pmix", "-lN", "2", "--ntasks", "4", "--overlap", "--export=ALL,X=1",
        "--container-image", "registry.example#team/app:1",
        "--container-mounts=./data:/data:ro", "--container-mounts=//tmp//:/scratch",
        "--container-workdir=sub", "--container-env=FOO,BAR", "-o", "log-%j.txt",
        "python", "train.py", "--lr", "0.1",
    ]  # fmt: skip
    srun, step, opts, cmd = step_args(printed(world, args))
    line = split_srun(args)
    assert srun == [str(world["bin"] / "srun"), *line.slurm]
    assert cmd == line.command == ["python", "train.py", "--lr", "0.1"]
    assert step["image"] == "/c/app.sif" and step["sub"] == "exec"
    assert step["envnames"] == "FOO,BAR" and step["workdir"] == "/workspace"
    assert "OMPI_X=1" in step["mpienv"]  # srun --mpi: the site's MPI settings
    opts_py = interpret(line.pyxis, str(world["cwd"]))
    binds = [f"{m.src}:{m.dst}{':ro' if m.readonly else ''}" for m in opts_py.mounts]
    assert [opts[i + 1] for i, o in enumerate(opts) if o == "-B"] == binds
    assert opts[opts.index("--pwd") + 1] == workdir_in("sub", "/workspace") == "/workspace/sub"
    assert "--nv" in opts and "--no-eval" in opts


def test_options_from_arrays_strings_and_variables(
    world: dict[str, object], tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        f"IMG=registry.example#team/app:1\n"
        f'ARGS=(--container-image="$IMG" --container-mounts="$PWD/data:/in")\n'
        f'COMMON="--ntasks=2 --container-workdir=/opt"\n'
        f'bash {world["shim"]} $COMMON "${{ARGS[@]}}" echo "a b"\n'
    )
    done = subprocess.run(
        ["bash", str(script)], cwd=str(world["cwd"]), env=world["env"],  # type: ignore[arg-type]
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    srun, step, opts, cmd = step_args(shlex.split(done.stdout))
    assert srun[1:] == ["--ntasks=2"] and cmd == ["echo", "a b"]
    assert step["image"] == "/c/app.sif" and opts[opts.index("--pwd") + 1] == "/opt"
    assert f"{world['cwd']}/data:/in" in opts


def test_environment_defaults_and_image_files(world: dict[str, object]) -> None:
    _, step, opts, _ = step_args(
        printed(world, ["true"], PYXIS_CONTAINER_IMAGE="./img.sqsh", PYXIS_CONTAINER_WRITABLE="y")
    )
    assert step["image"] == "/c/sqsh.sif" and step["rw"] == "1"
    assert opts[opts.index("--pwd") + 1] == "/srv"
    (world["cwd"] / "new.sqsh").write_bytes(b"hsqs" + b"\0" * 60)  # type: ignore[operator]
    done = run_shim(world, ["--container-image=./new.sqsh", "true"])
    _, step, _, _ = step_args(shlex.split(done.stdout))
    assert step["compat"] == "1" and step["image"].endswith("/new.sqsh")  # run as it is
    assert "not converted when the job was submitted" in done.stderr


def test_an_image_known_only_at_run_time(world: dict[str, object]) -> None:
    done = run_shim(world, ["--container-image=late.example#team/late:1", "true"])
    _, step, opts, _ = step_args(shlex.split(done.stdout))
    assert step["image"] == "/c/late.sif" and opts[opts.index("--pwd") + 1] == "/late"
    assert "converted on" in done.stderr  # by hpcbridge on the node, the site's rewrite applied
    other = run_shim(world, ["--container-image=other.example#x:1", "true"])
    assert step_args(shlex.split(other.stdout))[1]["image"] == "docker://other.example/x:1"
    assert "Apptainer fetches it" in other.stderr


def test_named_containers_entrypoint_and_save(world: dict[str, object]) -> None:
    args = ["--container-name=dev:no_exec", "--container-save=out/x.sqsh"]
    _, step, _, _ = step_args(printed(world, [*args, "--container-entrypoint", "-n1", "true"]))
    assert (step["name"], step["flag"], step["sub"]) == ("dev", "no_exec", "run")
    assert step["save"] == f"{world['cwd']}/out/x.sqsh" and step["image"] == ""


@pytest.mark.parametrize(
    "mounts",
    ["tmpfs:/t", "data:/d", "/a:b", "./data:/d:noexec", "./data:/d,,./data:/e", ":/b", ".",
     "./missing:/m"],
)  # fmt: skip
def test_mount_errors_agree_with_the_python_reader(world: dict[str, object], mounts: str) -> None:
    done = run_shim(world, [f"--container-mounts={mounts}", "--container-image=x:1", "true"])
    assert done.returncode == 1 and done.stdout == ""
    shim_error = done.stderr.strip().removeprefix("hpcbridge: error: ")
    if mounts == "./missing:/m":  # existence is checked when the step runs
        assert "does not exist" in shim_error
        return
    with pytest.raises(InputError) as err:
        interpret(split_srun([f"--container-mounts={mounts}", "x"]).pyxis, str(world["cwd"]))
    assert err.value.message.split(": ", 1)[-1][:25] in shim_error, (shim_error, err.value)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--container-image=dockerd://x:1", "true"], "docker save"),
        (["--container-name=a:later", "true"], '"auto", "create", "exec" or "no_exec"'),
        (["--container-image=x:1", "--container-image=y:1", "true"], "conflicts"),
        (["--container-image=x:1"], "no command"),
        (["--container-frob=1", "true"], "unknown pyxis option"),
        (["--container-image=x:1", "--multi-prog", "conf"], "--multi-prog"),
        (["--container-image=x:1", "--container-unshare=pid", "true"], "'pid' is not one of"),
    ],
)
def test_shim_refusals(world: dict[str, object], args: list[str], needle: str) -> None:
    done = run_shim(world, args)
    assert done.returncode == 1 and needle in done.stderr, done.stderr


def test_shim_key_matches_the_shim(world: dict[str, object]) -> None:
    assert shim_key("docker://registry.example#team/app:1", "/w") == "registry.example/team/app:1"
    assert shim_key("./x//y.sqsh", "/w") == "/w/x/y.sqsh"
    _, step, _, _ = step_args(
        printed(world, ["--container-image=docker://registry.example#team/app:1", "true"])
    )
    assert step["image"] == "/c/app.sif"


# ------------------------------------------------------------------ the step program


def run_step(
    world: dict[str, object],
    *fields: str,
    opts: tuple[str, ...] = (),
    cmd: tuple[str, ...] = ("true",),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    code = step_program(world["cfg"])  # type: ignore[arg-type]
    rt = str(world["bin"] / "apptainer")  # type: ignore[operator]
    argv = ["bash", "-c", code, "hpcb-step", rt, *fields, str(len(opts)), *opts, "--", *cmd]
    return subprocess.run(
        argv,
        cwd=str(world["cwd"]),
        env={**world["env"], "SLURM_JOB_ID": "77", **env},  # type: ignore[dict-item]
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fields(image: str = "/c/app.sif", sub: str = "exec", name: str = "", flag: str = "auto",
           save: str = "", rw: str = "", workdir: str = "", envnames: str = "", mpienv: str = "",
           compat: str = "0") -> list[str]:  # fmt: skip
    return [image, sub, name, flag, save, "", rw, workdir, envnames, mpienv, compat]


def test_step_runs_the_runtime_with_env_and_mpi(world: dict[str, object]) -> None:
    done = run_step(
        world, *fields(envnames="FOO", mpienv="OMPI_X=1", rw="1"), opts=("--nv",),
        cmd=("echo", "x"), FOO="host", PMIX_SERVER_TMPDIR=str(world["cwd"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "APPTAINER [exec] [--writable-tmpfs] [--nv] [/c/app.sif] [echo] [x]" in done.stdout
    assert "ENV APPTAINERENV_FOO=host" in done.stdout and "ENV OMPI_X=1" in done.stdout
    assert f"ENV APPTAINER_BIND={world['cwd']}" in done.stdout
    mine = run_step(world, *fields(mpienv="OMPI_X=1"), OMPI_X="mine")
    assert "ENV OMPI_X=mine" in mine.stdout  # the job's own value wins


def test_step_named_container_lifecycle(world: dict[str, object]) -> None:
    tmp = world["tmp"]
    exec_missing = run_step(world, *fields(name="dev", flag="exec"))
    assert (
        exec_missing.returncode == 1
        and "no step of this job runs container dev" in exec_missing.stderr
    )
    no_image = run_step(world, *fields(image="", name="dev"))
    assert no_image.returncode == 1 and "add --container-image" in no_image.stderr
    first = run_step(world, *fields(name="dev"), opts=("-B", "/x:/mnt/in", "--pwd", "/ws"))
    assert first.returncode == 0, first.stderr
    node = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    sandbox = Path(f"{tmp}/tmp/hpcb-containers-{os.getuid()}/job-77/{node}/dev")
    assert f"[exec] [--writable] [-B] [/x:/mnt/in] [--pwd] [/ws] [{sandbox}]" in first.stdout
    assert (sandbox / "mnt/in").is_dir() and (sandbox / "ws").is_dir()
    assert (sandbox / str(world["cwd"]).lstrip("/")).is_dir()  # the working directory is bound
    again = run_step(world, *fields(image="/other.sif", name="dev", rw="0"))
    assert f"[exec] [{sandbox}]" in again.stdout  # reused (read-only), the image ignored
    assert (sandbox / ".from").read_text() == "/c/app.sif\n"
    create = run_step(world, *fields(name="dev", flag="create"))
    assert create.returncode == 1 and "already exists" in create.stderr


def test_step_compat_reads_etc_environment(world: dict[str, object]) -> None:
    done = run_step(world, *fields(image="/x.sqsh", compat="1"), cmd=("env",))
    assert "[/x.sqsh] [/bin/sh] [-c]" in done.stdout and "/etc/environment" in done.stdout
    assert '"$@"] [hpcb-env] [env]\n' in done.stdout
