"""load_job: TOML job files and --set overrides into a validated JobSpec."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpcbridge.errors import JobSpecError
from hpcbridge.job.load import load_job
from hpcbridge.job.spec import Bind, Dependency, JobSpec
from hpcbridge.job.values import expand

BASE = 'image = "docker://127.0.0.1:5000/busybox:latest"\ncommand = ["true"]\n'


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def job(tmp_path: Path, extra: str = "", sets: tuple[str, ...] = (), base: str = BASE) -> JobSpec:
    return load_job(write(tmp_path, base + extra), sets)


def test_minimal_job_defaults(tmp_path: Path) -> None:
    spec = job(tmp_path)
    assert spec.name == "job"  # the file stem
    assert spec.command == ("true",)
    assert spec.script is None
    assert spec.array is None and spec.task_ids == (0,)
    assert spec.mpi.type == "none" and not spec.mpi.enabled
    assert spec.gpu_count == 0
    assert spec.job_dir == str(tmp_path)
    assert spec.source == str(tmp_path / "job.toml")
    json.dumps(spec.to_dict())  # JSON-able for the submission record


def test_full_job(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for n in ("b.csv", "a.csv", "c.csv"):
        (tmp_path / "data" / n).write_text(n)
    text = """
name = "align-run.1"
image = "images/tool.sif"
command = ["python3", "/app/run.py", "--in", "/input/{input_name}", "--task", "{task:03d}"]
workdir = "/work/"
inputs = "data/*.csv"
binds = [
  "./out/{task}:/output",
  "/tmp:/scratch:ro",
  { src = "{input}", dst = "/input/{input_name}", mode = "ro" },
]
modules = ["openmpi/4.1"]
pre = "echo start\\nmkdir -p out"
post = ["echo done"]
extra_sbatch = ["--mail-type=END", "--licenses=sas:1"]
dependencies = ["afterok:123:456", "hpcb-20260101-abc", { type = "afterany", id = "789_3" }]
signal = "USR1@60"
requeue = true
output = "logs/%x_%A_%a.out"

[resources]
partition = "debug"
time = "1-12:00"
nodes = 2
ntasks = 4
ntasks_per_node = 2
cpus_per_task = 4
mem_per_cpu = "2G"
gres = "gpu:2"
constraint = "avx2"
exclusive = true

[env]
OMP_NUM_THREADS = 4
LABEL = "task-{task}"

[mpi]
type = "srun"
pmi = "pmix"
flavor = "openmpi"

[gpu]
vendor = "nvidia"
"""
    spec = load_job(write(tmp_path, text))
    assert spec.name == "align-run.1"
    assert spec.image == str(tmp_path / "images" / "tool.sif")
    assert spec.pwd == "/work" and spec.pwd_key == "workdir"  # the old name of pwd
    assert spec.inputs == tuple(str(tmp_path / "data" / n) for n in ("a.csv", "b.csv", "c.csv"))
    assert spec.array is not None and spec.array.indices == (0, 1, 2)
    assert spec.binds[0] == Bind(str(tmp_path / "out" / "{task}"), "/output", "rw", per_task=True)
    assert spec.binds[1] == Bind("/tmp", "/scratch", "ro", per_task=False)
    assert spec.binds[2].per_task and spec.binds[2].read_only
    assert expand(spec.binds[0].src, 2) == str(tmp_path / "out" / "2")
    assert expand(spec.binds[2].src, 1, spec.input_for(1)) == str(tmp_path / "data" / "b.csv")
    assert spec.env == {"OMP_NUM_THREADS": "4", "LABEL": "task-{task}"}
    r = spec.resources
    assert (r.time, r.time_str) == (129600, "1-12:00:00")
    assert (r.mem_per_cpu, r.mem_per_cpu_str, r.mem) == (2048, "2G", None)
    assert r.exclusive and r.constraint == "avx2"
    assert spec.gpu_count == 2 and spec.gpu.vendor == "nvidia" and spec.gpu.count == 0
    assert spec.mpi.pmi == "pmix" and spec.mpi.flavor == "openmpi"
    assert spec.pre == ("echo start", "mkdir -p out")
    assert spec.dependencies == (
        Dependency("afterok", ("123", "456")),
        Dependency("afterok", ("hpcb-20260101-abc",)),
        Dependency("afterany", ("789_3",)),
    )
    assert Dependency.is_slurm_id("789_3") and not Dependency.is_slurm_id("hpcb-x")
    assert spec.signal == "USR1@60" and spec.requeue is True
    assert spec.extra_sbatch == ("--mail-type=END", "--licenses=sas:1")
    d = spec.to_dict()
    assert d["resources"]["time"] == "1-12:00:00" and d["array"] == "0-2"


def test_script_instead_of_command(tmp_path: Path) -> None:
    spec = job(
        tmp_path, base='image = "busybox"\nscript = """\necho ${HOME} {not a placeholder}\n"""\n'
    )
    assert spec.command is None
    assert spec.script == "echo ${HOME} {not a placeholder}\n"


def test_toml_time_of_day_and_integer_minutes(tmp_path: Path) -> None:
    assert job(tmp_path, "[resources]\ntime = 02:30:00\n").resources.time == 9000
    assert job(tmp_path, "[resources]\ntime = 90\n").resources.time == 5400


def test_sets_are_typed_by_the_schema(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        sets=(
            "resources.time=01:00:00",
            "resources.nodes=2",
            "resources.exclusive=yes",
            "array=0-9%3",
            "command=python3 -c 'print(1)'",
            "env.NEW=value=with=equals",
            "mpi.type=mpirun",
            "modules=a/1,b/2",
            "binds=/tmp:/data:ro",
            "name=renamed",
        ),
    )
    assert spec.resources.time == 3600 and spec.resources.nodes == 2 and spec.resources.exclusive
    assert spec.array is not None and len(spec.array) == 10 and spec.array.throttle == 3
    assert spec.command == ("python3", "-c", "print(1)")
    assert spec.env["NEW"] == "value=with=equals"
    assert spec.mpi.type == "mpirun"
    assert spec.modules == ("a/1", "b/2")
    assert spec.binds == (Bind("/tmp", "/data", "ro"),)
    assert spec.name == "renamed"


def test_set_toml_array_value(tmp_path: Path) -> None:
    spec = job(tmp_path, sets=('command=["sh", "-c", "echo a b"]',))
    assert spec.command == ("sh", "-c", "echo a b")


def test_set_mpi_on_a_string_shorthand(tmp_path: Path) -> None:
    spec = job(tmp_path, 'mpi = "srun"\n', sets=("mpi.pmi=pmi2",))
    assert (spec.mpi.type, spec.mpi.pmi) == ("srun", "pmi2")


def test_inputs_file_relative_to_the_list(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "in.txt").write_text("# comment\n../x.dat\n\n/abs/y.dat\n")
    spec = job(tmp_path, 'inputs_file = "lists/in.txt"\narray = "%1"\n')
    assert spec.inputs == (str(tmp_path / "x.dat"), "/abs/y.dat")
    assert spec.array is not None and spec.array.spec == "0-1%1"


def test_inputs_with_a_subset_array(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("")
    spec = job(tmp_path, 'inputs = "*.txt"\narray = "1,3"\n')
    assert spec.task_ids == (1, 3)
    assert spec.input_for(3) == str(tmp_path / "3.txt")


def test_explicit_input_list(tmp_path: Path) -> None:
    spec = job(tmp_path, 'inputs = ["a", "/b"]\n')
    assert spec.inputs == (str(tmp_path / "a"), "/b")


def test_default_name_is_sanitized_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, name="my job (v2).toml")
    assert load_job(path).name == "my_job__v2_"


def test_gpu_table_defaults_to_one_gpu(tmp_path: Path) -> None:
    spec = job(tmp_path, '[gpu]\nvendor = "amd"\n')
    assert spec.gpu_count == 1 and spec.gpu.vendor == "amd"
    assert job(tmp_path, "[resources]\ngpus_per_node = 3\n").gpu_count == 3


def test_local_image_sources_resolve_against_job_dir(tmp_path: Path) -> None:
    assert job(tmp_path, base='image = "oci-archive:img.tar"\ncommand = ["x"]\n').image == (
        f"oci-archive:{tmp_path}/img.tar"
    )
    assert job(tmp_path, base='image = "docker-archive:/abs.tar"\ncommand=["x"]\n').image == (
        "docker-archive:/abs.tar"
    )
    assert job(tmp_path, base='image = "debian:12"\ncommand=["x"]\n').image == "debian:12"


def test_job_spec_is_frozen(tmp_path: Path) -> None:
    spec = job(tmp_path)
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError) as info:
        job(tmp_path, "[resources]\ntime = 'soon'\n")
    assert str(info.value).startswith(f"{tmp_path / 'job.toml'}: resources.time = 'soon'")


def test_relative_cwd_independence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", BASE + 'binds = ["data:/data"]\n')
    monkeypatch.chdir(tmp_path)
    spec = load_job(Path("sub/job.toml"))
    assert spec.binds[0].src == os.path.join(str(tmp_path), "sub", "data")


def test_inputs_glob_takes_directories_too(tmp_path: Path) -> None:
    for name in ("s2", "s1"):
        (tmp_path / "samples" / name).mkdir(parents=True)
    (tmp_path / "samples" / ".hidden").mkdir()
    spec = job(tmp_path, 'inputs = "samples/*"\n')
    assert spec.inputs == (str(tmp_path / "samples" / "s1"), str(tmp_path / "samples" / "s2"))
