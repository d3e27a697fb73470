"""Rendered scripts on the real testbed: Slurm 22.05 + unprivileged Apptainer 1.4.5.

* ``sbatch --test-only`` accepts every golden script;
* an array job with input mapping writes one output per input through per-task binds;
* a GPU job (fake gres) sees CUDA_VISIBLE_DEVICES inside the container;
* 2-node MPI hybrid jobs print distinct ranks on distinct nodes from inside the
  container (Open MPI + pmix, MPICH + pmi2 with the UCX setting, mpirun);
* outcome files record exit codes and signals;
* ``hpcbridge sbatch`` (pyxis style) runs a batch script in the container.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.golden.support import golden_path
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed


@pytest.fixture(scope="module")
def images(testbed: Testbed) -> dict[str, dict[str, Any]]:
    """busybox and mpi converted once by hpcbridge itself, in the test user's cache."""
    out = {}
    for name in ("busybox", "mpi"):
        ref = "docker://" + testbed.image(name).ref
        done = testbed.hpcbridge("convert", ref, "--json", env=testbed.site_env(), timeout=900)
        assert done.returncode == 0, done.stderr
        out[name] = {"ref": ref, **json.loads(done.stdout)}
    return out


def write_user_file(tb: Testbed, path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chown(path, tb.user.uid, tb.user.gid)
    os.chmod(path, mode)
    return path


def render_cli(tb: Testbed, job: Path, *sets: str) -> Path:
    """``hpcbridge render JOB -o JOB.sh`` as the test user (the real CLI, real convert)."""
    script = job.with_suffix(".sh")
    args = ["render", str(job), "-o", str(script)]
    for s in sets:
        args += ["--set", s]
    done = tb.hpcbridge(*args, cwd=job.parent, env=tb.site_env())
    assert done.returncode == 0, done.stderr
    return script


def render_tracked(tb: Testbed, job: Path, outcomes: Path) -> Path:
    """Render in-process with a tracking context (outcome files), as the submitter does."""
    from hpcbridge.config import load_config
    from hpcbridge.job.load import load_job
    from hpcbridge.render import TrackingContext, render_job
    from hpcbridge.submit.submitter import resolve_image

    env = {**tb.env, **tb.site_env()}
    cfg = load_config({}, cwd=job.parent, environ=env)
    spec = load_job(job)
    image = resolve_image(spec.image, cfg)
    rendered = render_job(
        spec, cfg, image=image, tracking=TrackingContext("tb-render", str(outcomes))
    )
    return write_user_file(tb, job.with_suffix(".sh"), rendered.script, 0o755)


def submit_and_wait(tb: Testbed, script: Path, timeout: float = 300) -> str:
    job_id = tb.sbatch(str(script), cwd=script.parent)
    tb.wait_for_jobs([job_id], timeout=timeout)
    return job_id


def read_log(directory: Path, pattern: str) -> str:
    logs = sorted(directory.glob(pattern))
    assert logs, f"no log {pattern} in {directory}: {os.listdir(directory)}"
    return "\n".join(p.read_text(errors="replace") for p in logs)


# --------------------------------------------------------------------------- goldens


def _goldens() -> list[str]:
    return sorted(p.name for p in golden_path("x").parent.glob("*.sh"))


@pytest.mark.parametrize("name", _goldens())
def test_sbatch_test_only_accepts_golden(testbed: Testbed, user_dir: Path, name: str) -> None:
    """The goldens name the golden site's partitions; -p debug maps them onto the testbed.
    A dependency on a job the controller does not know is refused by 26.05 ("Job dependency
    problem"; 22.05 accepted it): the golden's job id becomes a held job's."""
    text = golden_path(name.removesuffix(".sh")).read_text()
    held = None
    if "--dependency=afterok:1234\n" in text:
        held = testbed.sbatch("--hold", "-o", "/dev/null", "--wrap", "true", cwd=user_dir)
        text = text.replace("--dependency=afterok:1234\n", f"--dependency=afterok:{held}\n")
    script = write_user_file(testbed, user_dir / name, text)
    try:
        done = testbed.run_as_user(
            ["sbatch", "--test-only", "-p", "debug", str(script)], cwd=user_dir, check=False
        )
    finally:
        if held:
            testbed.run_as_user(["scancel", held])
    assert done.returncode == 0, done.stderr
    assert "to start at" in done.stderr, done.stderr


# --------------------------------------------------------------------------- arrays


def test_array_with_input_mapping_writes_one_output_per_input(
    testbed: Testbed, user_dir: Path, images: dict[str, Any]
) -> None:
    data = user_dir / "data"
    data.mkdir()
    names = ["alpha.txt", "beta gamma.txt", "delta,x.txt", "é-ü.txt"]
    for i, name in enumerate(names):
        write_user_file(testbed, data / name, "word " * (i + 1))
    os.chown(data, testbed.user.uid, testbed.user.gid)
    job = write_user_file(
        testbed,
        user_dir / "count.toml",
        f"""
name = "count"
image = "{images["busybox"]["ref"]}"
command = ["sh", "-c", "wc -w < /in > /out/words; printf %s \\"$1\\" > /out/stem", "x", "{{input_stem}}"]
inputs = "data/*.txt"
binds = [
  {{src = "{{input}}", dst = "/in", mode = "ro"}},
  {{src = "results/{{input_stem}}", dst = "/out"}},
]
[resources]
time = "00:05:00"
mem = "100M"
""",
    )
    script = render_cli(testbed, job)
    text = script.read_text()
    assert "#SBATCH --array=0-3" in text and "#SBATCH --output=%x_%A_%a.out" in text
    job_id = submit_and_wait(testbed, script)
    for i, name in enumerate(sorted(names)):  # task i gets the i-th input in sorted order
        stem = name.rsplit(".", 1)[0]
        out = user_dir / "results" / stem
        assert (out / "stem").read_text() == stem
        assert (out / "words").read_text().strip() == str(names.index(name) + 1)
        assert (user_dir / f"count_{job_id}_{i}.out").exists()
    assert sorted(p.name for p in (user_dir / "results").iterdir()) == sorted(
        n.rsplit(".", 1)[0] for n in names
    )


def test_outcome_files_record_exit_codes_and_signals(
    testbed: Testbed, user_dir: Path, images: dict[str, Any]
) -> None:
    outcomes = user_dir / "outcomes"
    job = write_user_file(
        testbed,
        user_dir / "fail.toml",
        f"""
image = "{images["busybox"]["ref"]}"
command = ["sh", "-c", "if [ $HPCBRIDGE_TASK = 1 ]; then exit 3; fi; if [ $HPCBRIDGE_TASK = 2 ]; then sleep 300; fi"]
array = "0-2"
[resources]
time = "00:05:00"
""",
    )
    script = render_tracked(testbed, job, outcomes)
    job_id = testbed.sbatch(str(script), cwd=user_dir)
    # wait until task 2 has started, then cancel it: the trap records the signal
    import time

    deadline = time.monotonic() + 120
    while not (outcomes / "2.start").exists():
        assert time.monotonic() < deadline, "task 2 never started"
        time.sleep(0.5)
    time.sleep(1)
    testbed.run_as_user(["scancel", f"{job_id}_2"])
    testbed.wait_for_jobs([job_id], timeout=120)
    ends = {t: (outcomes / f"{t}.end").read_text().split() for t in range(3)}
    assert ends[0][1:] == ["0", "exit"]
    assert ends[1][1:] == ["3", "exit"]
    assert ends[2][1:] == ["143", "signal:TERM"]
    start = (outcomes / "1.start").read_text().split()
    assert start[1].isdigit() and start[2] == job_id and start[3] in testbed.nodes
    assert not [p for p in outcomes.iterdir() if p.name.startswith(".")]  # temp names moved


# --------------------------------------------------------------------------- GPU


def test_gpu_job_sees_cuda_visible_devices(
    testbed: Testbed, user_dir: Path, images: dict[str, Any]
) -> None:
    job = write_user_file(
        testbed,
        user_dir / "gpu.toml",
        f"""
name = "gpu"
image = "{images["busybox"]["ref"]}"
command = ["sh", "-c", "echo \\"inside CVD=[$CUDA_VISIBLE_DEVICES] container=$APPTAINER_CONTAINER\\""]
[resources]
time = "00:05:00"
[gpu]
count = 2
""",
    )
    script = render_cli(testbed, job)
    text = script.read_text()
    assert "#SBATCH --gres=gpu:2" in text and "  --nv\n" in text
    job_id = submit_and_wait(testbed, script)
    log = read_log(user_dir, f"gpu_{job_id}.out")
    m = re.search(r"inside CVD=\[([^\]]*)\] container=(\S+)", log)
    assert m, log
    assert m.group(1) == "0,1", log
    assert m.group(2).endswith(".sif")


# --------------------------------------------------------------------------- MPI


def _ranks(log: str) -> list[dict[str, str]]:
    rows = [
        dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        for line in log.splitlines()
        if line.startswith("hello rank=")
    ]
    return sorted(rows, key=lambda r: int(r["rank"]))


@pytest.mark.parametrize(
    ("flavor", "mpi_type", "binary"),
    [
        ("openmpi", "srun", "/opt/hello-ompi"),
        ("mpich", "srun", "/opt/hello-mpich"),
        ("openmpi", "mpirun", "/opt/hello-ompi"),
    ],
)
def test_mpi_hybrid_two_nodes_distinct_ranks(
    testbed: Testbed,
    user_dir: Path,
    images: dict[str, Any],
    flavor: str,
    mpi_type: str,
    binary: str,
) -> None:
    job = write_user_file(
        testbed,
        user_dir / "mpi.toml",
        f"""
name = "mpi"
image = "{images["mpi"]["ref"]}"
command = ["{binary}"]
[resources]
nodes = 2
ntasks_per_node = 2
time = "00:05:00"
[mpi]
type = "{mpi_type}"
flavor = "{flavor}"
""",
    )
    script = render_cli(testbed, job)
    text = script.read_text()
    if mpi_type == "srun":
        want = "pmix" if flavor == "openmpi" else "pmi2"
        assert f'srun --mpi={want} "${{hpcb_launch[@]}}"' in text
    if flavor == "mpich":
        assert "APPTAINERENV_UCX_TLS='^cma'" in text
    job_id = submit_and_wait(testbed, script)
    log = read_log(user_dir, f"mpi_{job_id}.out")
    ranks = _ranks(log)
    assert [r["rank"] for r in ranks] == ["0", "1", "2", "3"], log
    assert {r["size"] for r in ranks} == {"4"}, log
    assert {r["host"] for r in ranks} == {"n1", "n2"}, log
    assert {r["flavour"] for r in ranks} == {flavor}, log


# --------------------------------------------------------------------------- pyxis


def test_pyxis_style_sbatch_runs_the_script_in_the_container(
    testbed: Testbed, user_dir: Path, images: dict[str, Any]
) -> None:
    (user_dir / "in").mkdir()
    write_user_file(testbed, user_dir / "in" / "data.txt", "payload\n")
    os.chown(user_dir / "in", testbed.user.uid, testbed.user.gid)
    script = write_user_file(
        testbed,
        user_dir / "job.sh",
        "#!/bin/sh\n"
        "#SBATCH --job-name=pyxis\n"
        "#SBATCH --time=00:05:00\n"
        "#SBATCH --container-mounts=./in:/data:ro\n"
        'echo "os=$(head -1 /etc/os-release) args=[$1|$2] data=$(cat /data/data.txt)"\n'
        'echo "keep=[$KEEP_ME] pwd=$(pwd)"\n',
        0o755,
    )
    image = testbed.image("busybox").ref.replace("/", "#", 1)  # pyxis REGISTRY#IMAGE:TAG
    env = {**testbed.site_env(), "KEEP_ME": "a 'b' $c"}
    dry = testbed.hpcbridge(
        "sbatch", "-p", "debug", f"--container-image={image}", "--container-env=KEEP_ME",
        "--container-workdir=/data", "--dry-run", str(script), "one arg", "two",
        cwd=user_dir, env=env,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "# (pyxis options, handled by hpcbridge) #SBATCH --container-mounts" in dry.stdout
    done = testbed.hpcbridge(
        "sbatch", "-p", "debug", f"--container-image={image}", "--container-env=KEEP_ME",
        "--container-workdir=/data", str(script), "one arg", "two",
        cwd=user_dir, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    m = re.fullmatch(r"Submitted batch job (\d+)\n", done.stdout)
    assert m, done.stdout
    testbed.wait_for_jobs([m.group(1)], timeout=300)
    log = read_log(user_dir, f"slurm-{m.group(1)}.out")
    assert 'os=NAME="hpcbridge testbed busybox"' in log, log
    assert "args=[one arg|two] data=payload" in log, log
    assert "keep=[a 'b' $c] pwd=/data" in log, log


def test_pyxis_bad_mount_is_one_line(testbed: Testbed, user_dir: Path) -> None:
    script = write_user_file(testbed, user_dir / "j.sh", "#!/bin/sh\ntrue\n")
    done = testbed.hpcbridge(
        "sbatch", "--container-image=x:1", "--container-mounts=/nonexistent/q:/q",
        str(script), cwd=user_dir, env=testbed.site_env(),
    )  # fmt: skip
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "/nonexistent/q" in done.stderr
