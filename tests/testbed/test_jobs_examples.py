"""docs/examples on the real testbed (Slurm 22.05, rootless Apptainer 1.4.5, 2 nodes).

Each test renders an example job file with the real CLI as the test user (only the
image, and where the example's program is not in the test image, the command,
replaced with ``--set``) and checks the effect from inside the container:

* an ext3 overlay made with ``mkfs.ext3 -d``: written by one task (the change is in
  the image file afterwards), then read-only by a 20-task array at once;
* a writable overlay per array task, and per rank in a 2-node srun job (each image
  holds only its own task's/rank's file);
* ``apptainer run`` with arguments (the runscript ran); a local ``.simg`` (squashfs)
  and a local SIF run as they are;
* ``$TMPDIR`` bound from the node (not checked at render time; missing on the node:
  the task fails with one line and ``hpcbridge status`` shows the reason);
* ``image-src=`` binds, ``--contain --workdir``, ``--mpi=none``, ``--mpi=cray_shasta``
  (the testbed's srun has it) with ``APPTAINER_CONTAINLIBS``, ``srun --cpu-bind``,
  environment values computed on the node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from hpcbridge import _toml
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture(scope="module")
def busybox(testbed: Testbed) -> dict[str, Any]:
    """The busybox test image converted by hpcbridge in the test user's cache."""
    ref = "docker://" + testbed.image("busybox").ref
    done = testbed.hpcbridge("convert", ref, "--json", env=testbed.site_env(), timeout=900)
    assert done.returncode == 0, done.stderr
    return {"ref": ref, **json.loads(done.stdout)}


# ----------------------------------------------------------------------- helpers


def own(tb: Testbed, *paths: Path) -> None:
    for path in paths:
        os.chown(path, tb.user.uid, tb.user.gid)


def write(tb: Testbed, path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    own(tb, path.parent)
    path.write_text(text, encoding="utf-8")
    own(tb, path)
    return path


def example(tb: Testbed, d: Path, name: str) -> Path:
    """docs/examples/NAME.toml, as it is, in the test user's directory."""
    return write(tb, d / f"{name}.toml", (EXAMPLES / f"{name}.toml").read_text())


def argv_set(key: str, argv: list[str]) -> str:
    return f"{key}={json.dumps(argv)}"  # a JSON array of strings is a TOML array


def render(tb: Testbed, job: Path, *sets: str, env: dict[str, str] | None = None) -> str:
    """``hpcbridge render JOB -o JOB.sh --set ...`` as the test user; the script text."""
    script = job.with_suffix(".sh")
    args = ["render", str(job), "-o", str(script)]
    for item in sets:
        args += ["--set", item]
    done = tb.hpcbridge(*args, cwd=job.parent, env={**tb.site_env(), **(env or {})})
    assert done.returncode == 0, done.stderr
    return script.read_text()


def run(
    tb: Testbed,
    job: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    extra: tuple[str, ...] = (),
) -> str:
    """sbatch the rendered script (``extra``: more sbatch options), wait; the log text
    (every task's)."""
    script = job.with_suffix(".sh")
    args = ["--export=ALL," + ",".join(f"{k}={v}" for k, v in env.items())] if env else []
    args += extra
    job_id = tb.sbatch(*args, str(script), cwd=job.parent)
    states = tb.wait_for_jobs([job_id], timeout=timeout)
    logs = sorted(job.parent.glob(f"*_{job_id}*.out"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert states and all(s == "COMPLETED" for s in states.values()), (states, text)
    return text


def mkfs_ext3(tb: Testbed, image: Path, files: dict[str, str], size_mb: int = 64) -> Path:
    """An Apptainer overlay image (upper/ and work/ at its root) made with mkfs.ext3 -d,
    as the test user, holding ``files`` (paths inside the container)."""
    src = image.with_name(image.name + ".src")
    image.parent.mkdir(parents=True, exist_ok=True)
    own(tb, image.parent)
    for inner, text in files.items():
        write(tb, src / "upper" / inner.lstrip("/"), text)
    (src / "work").mkdir(parents=True, exist_ok=True)
    for p in [src, *src.rglob("*")]:
        own(tb, p)
    tb.run_as_user(["truncate", "-s", f"{size_mb}M", str(image)])
    tb.run_as_user(["/usr/sbin/mkfs.ext3", "-q", "-d", str(src), str(image)])
    shutil.rmtree(src)
    return image


def ext3_cat(image: Path, inner: str) -> str:
    """A file of an overlay image as the container wrote it (debugfs, read only)."""
    from hpcbridge import runner

    done = runner.run(["/usr/sbin/debugfs", "-R", f"cat /upper{inner}", str(image)], check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sif_of(busybox: dict[str, Any]) -> Path:
    return Path(busybox["path"])


# ------------------------------------------------------------------ ext3 overlays


def test_ext3_overlay_written_by_one_task_then_read_by_twenty(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    overlay = mkfs_ext3(testbed, user_dir / "pyenv.ext3", {"/opt/env/base.txt": "made-by-mkfs\n"})
    install = example(testbed, user_dir, "ext3-overlay-install")
    script = render(
        testbed,
        install,
        f"image={busybox['ref']}",
        "script=mkdir -p /opt/env/lib && echo v1-from-one-task > /opt/env/lib/pkg.txt",
    )
    assert f"  --overlay {overlay}\n" in script
    run(testbed, install)
    assert ext3_cat(overlay, "/opt/env/lib/pkg.txt") == "v1-from-one-task\n"  # persistent

    for i in range(20):
        write(testbed, user_dir / "samples" / f"s{i:02d}.csv", f"{i}\n")
    (user_dir / "results").mkdir()
    own(testbed, user_dir / "results")
    array = example(testbed, user_dir, "ext3-overlay-array")
    check = (
        "cat /opt/env/lib/pkg.txt /opt/env/base.txt > /results/$HPCBRIDGE_INPUT_STEM.txt; "
        "(touch /opt/env/new 2>/dev/null && echo writable || echo read-only)"
        " >> /results/$HPCBRIDGE_INPUT_STEM.txt"
    )
    script = render(
        testbed, array, f"image={busybox['ref']}", argv_set("command", ["sh", "-c", check])
    )
    assert "#SBATCH --array=0-19\n" in script and f"  --overlay {overlay}:ro\n" in script
    run(testbed, array, timeout=600)
    results = sorted((user_dir / "results").iterdir())
    assert [p.stem for p in results] == [f"s{i:02d}" for i in range(20)]
    for path in results:
        assert path.read_text() == "v1-from-one-task\nmade-by-mkfs\nread-only\n", path


def test_writable_overlay_per_task(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    for t in range(3):
        mkfs_ext3(testbed, user_dir / "overlays" / f"task{t}.ext3", {"/opt/state/.keep": ""})
    job = example(testbed, user_dir, "overlay-per-task")
    write_state = "echo written-by-task-$HPCBRIDGE_TASK > /opt/state/out.txt"
    render(testbed, job, f"image={busybox['ref']}", "array=0-2",
           argv_set("command", ["sh", "-c", write_state]))  # fmt: skip
    run(testbed, job)
    for t in range(3):
        got = ext3_cat(user_dir / "overlays" / f"task{t}.ext3", "/opt/state/out.txt")
        assert got == f"written-by-task-{t}\n"


def test_per_rank_overlay_in_a_two_node_mpi_job(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    for r in range(4):
        mkfs_ext3(testbed, user_dir / "overlays" / f"rank{r}.ext3", {"/opt/.keep": ""})
    (user_dir / "case").mkdir()
    own(testbed, user_dir / "case")
    job = example(testbed, user_dir, "mpi-rank-overlays")
    note = 'echo "rank $SLURM_PROCID on $(hostname)" > /opt/rank.txt; ls /opt'
    flavor, pmi = testbed.srun_mpi  # Open MPI + pmix on 22.05; MPICH + pmi2 on 26.05
    script = render(testbed, job, f"image={busybox['ref']}", f"mpi.flavor={flavor}",
                    argv_set("command", ["sh", "-c", note]))  # fmt: skip
    assert f'--overlay {user_dir}/overlays/rank"${{hpcb_at_rank}}".ext3' in script
    assert f"srun --mpi={pmi} --kill-on-bad-exit=1" in script
    log = run(testbed, job)
    hosts = set()
    for r in range(4):
        text = ext3_cat(user_dir / "overlays" / f"rank{r}.ext3", "/opt/rank.txt")
        m = re.fullmatch(rf"rank {r} on (n[12])\n", text)
        assert m, (r, text, log)
        hosts.add(m.group(1))
    assert hosts == {"n1", "n2"}
    assert log.count("rank.txt") == 4  # each rank sees only its own file


# ------------------------------------------------------------------ run mode, images


def test_run_mode_with_arguments(testbed: Testbed, user_dir: Path, busybox: dict[str, Any]) -> None:
    (user_dir / "checkpoints").mkdir()
    own(testbed, user_dir / "checkpoints")
    job = example(testbed, user_dir, "run-mode")
    script = render(testbed, job, f"image={busybox['ref']}")
    assert "  apptainer run\n" in script
    log = run(testbed, job)
    for t in (0, 1):  # the image's runscript (its ENTRYPOINT) printed its arguments
        assert f"entrypoint args: --epochs 3 --checkpoint /ckpt/task{t}" in log, log


def test_local_simg_and_sif_run_as_they_are(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    sif = sif_of(busybox)
    listing = testbed.run_as_user(["apptainer", "sif", "list", str(sif)]).stdout
    fs_id = re.search(r"^(\d+)\s*\|.*\|FS \(Squashfs", listing, re.M)
    assert fs_id, listing
    images = user_dir / "images"
    images.mkdir()
    own(testbed, images)
    simg = images / "legacy-tools.simg"  # a bare squashfs: a Singularity 2 image
    testbed.run_as_user(
        ["sh", "-c", f'apptainer sif dump {fs_id.group(1)} "$1" > "$2"', "x", str(sif), str(simg)]
    )
    assert simg.read_bytes()[:4] == b"hsqs"
    job = example(testbed, user_dir, "local-simg")
    show = ["sh", "-c", 'echo "image=$APPTAINER_CONTAINER"; head -1 /etc/os-release']
    script = render(testbed, job, argv_set("command", show))
    assert f"\n  {simg}\n" in script  # not converted: the file itself
    log = run(testbed, job)
    assert f"image={simg}" in log and 'NAME="hpcbridge testbed busybox"' in log, log
    shutil.copyfile(sif, images / "copy.sif")
    own(testbed, images / "copy.sif")
    render(testbed, job, "image=./images/copy.sif", argv_set("command", show))
    log = run(testbed, job)
    assert f"image={images}/copy.sif" in log, log


# ------------------------------------------------------------------ node-local binds


def test_tmpdir_bind_is_resolved_and_checked_on_the_node(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    for name in ("a.fq.gz", "b.fq.gz"):
        write(testbed, user_dir / "reads" / name, f"reads of {name}\n")
    write(testbed, user_dir / "reference.fa", ">chr1\nACGT\n")
    node_tmp = user_dir / "node-tmp"
    node_tmp.mkdir()
    own(testbed, node_tmp)
    job = example(testbed, user_dir, "tmpdir-staging")
    show = ["sh", "-c", 'echo "ref=$(tail -1 /stage/reference.fa) reads=$(cat "$1")"', "x",
            "/reads/{input_name}"]  # fmt: skip
    # the login node's TMPDIR does not exist: render neither checks nor embeds it
    script = render(testbed, job, f"image={busybox['ref']}", argv_set("command", show),
                    env={"TMPDIR": "/nonexistent/login-tmp"})  # fmt: skip
    assert "/nonexistent/login-tmp" not in script and "login-tmp" not in script
    # one TMPDIR for both tasks here (a real node gives each job its own): one task at a
    # time, or the two staging copies race on the same file
    log = run(testbed, job, env={"TMPDIR": str(node_tmp)}, extra=("--array=0-1%1",))
    assert "ref=ACGT reads=reads of a.fq.gz" in log and "ref=ACGT reads=reads of b.fq.gz" in log
    assert (node_tmp / "stage" / "reference.fa").is_file()  # staged by pre, on the node

    # no staging: the source is missing on the node -> one line, exit 66, the reason
    submitted = testbed.hpcbridge(
        "submit", str(job), "--json", "--set", f"image={busybox['ref']}", "--set", "pre=[]",
        "--set", argv_set("command", show), cwd=user_dir,
        env={**testbed.site_env(), "TMPDIR": str(user_dir / "empty-tmp")},
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    sub = json.loads(submitted.stdout)
    testbed.wait_for_jobs(sub["job_ids"], timeout=300)
    status = testbed.hpcbridge("status", sub["id"], cwd=user_dir, env=testbed.site_env())
    missing = f"{user_dir}/empty-tmp/stage does not exist"
    lines = [ln for ln in status.stdout.splitlines() if "binds[0].src = $TMPDIR/stage" in ln]
    assert len(lines) == 2 and all(missing in ln and "exit code 66" in ln for ln in lines), (
        status.stdout
    )
    for task in (0, 1):  # one clear line in each task's log
        shown = testbed.hpcbridge(
            "logs", sub["id"], "--task", str(task), cwd=user_dir, env=testbed.site_env()
        )
        lines = [ln for ln in shown.stdout.splitlines() if ln.startswith("hpcbridge: ")]
        assert len(lines) == 1 and missing in lines[0], shown.stdout


def test_image_src_bind(testbed: Testbed, user_dir: Path, busybox: dict[str, Any]) -> None:
    data = user_dir / "data"
    write(testbed, data / "indexes" / "hg38" / "marker", "index of hg38\n")
    for p in [data, *data.rglob("*")]:
        own(testbed, p)
    squash = user_dir / "genomes.sqsh"
    testbed.run_as_user(["mksquashfs", str(data), str(squash), "-quiet", "-noappend", "-all-root"])
    job = example(testbed, user_dir, "image-src-bind")
    show = ["sh", "-c", "cat /ref/hg38/marker; ls /ref"]
    script = render(testbed, job, f"image={busybox['ref']}", argv_set("command", show))
    assert f"-B {squash}:/ref:ro,image-src=/indexes" in script
    log = run(testbed, job)
    assert "index of hg38" in log and "hg38" in log.split("index of hg38", 1)[1], log


def test_contain_and_workdir(testbed: Testbed, user_dir: Path, busybox: dict[str, Any]) -> None:
    for sub in ("data", "out"):
        (user_dir / sub).mkdir()
        own(testbed, user_dir / sub)
    local = user_dir / "local"
    job = example(testbed, user_dir, "contain-workdir")
    name = f"inside-{os.getpid()}.txt"
    show = ["sh", "-c", f'echo hi > /tmp/{name}; echo "tmp=$(ls /tmp) pwd=$(pwd)"']
    script = render(
        testbed, job, f"image={busybox['ref']}", argv_set("command", show),
        f"apptainer.workdir={local}/$SLURM_JOB_ID",  # /local is not on the testbed's nodes
        argv_set("pre", [f'mkdir -p "{local}/$SLURM_JOB_ID"']),
    )  # fmt: skip
    assert "  --contain\n" in script and f'--workdir {local}/"${{hpcb_env_SLURM_JOB_ID}}"' in script
    log = run(testbed, job)
    assert f"tmp={name} pwd=/data" in log, log  # a /tmp of its own
    made = list(local.glob(f"*/tmp/{name}"))
    assert len(made) == 1 and made[0].read_text() == "hi\n"  # backed by --workdir on disk
    assert not Path("/tmp", name).exists()


# ------------------------------------------------------------------ MPI, srun options


def _rank_lines(log: str, word: str) -> list[dict[str, str]]:
    rows = [
        dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        for line in log.splitlines()
        if line.startswith(word + " ")
    ]
    return sorted(rows, key=lambda r: int(r["rank"]))


def test_mpi_none(testbed: Testbed, user_dir: Path, busybox: dict[str, Any]) -> None:
    job = example(testbed, user_dir, "mpi-none")
    show = ["sh", "-c", 'echo "slice rank=$SLURM_PROCID of=$SLURM_NTASKS pmi=$(env | grep -c ^PMI)'
            ' host=$(hostname)"']  # fmt: skip
    script = render(testbed, job, f"image={busybox['ref']}", argv_set("command", show))
    assert 'srun --mpi=none "${hpcb_launch[@]}"' in script
    rows = _rank_lines(run(testbed, job), "slice")
    assert [r["rank"] for r in rows] == ["0", "1", "2", "3"] and {r["of"] for r in rows} == {"4"}
    # no PMI at all (with --mpi=pmi2 every rank sees PMI_RANK, PMI_FD, ...)
    assert {r["pmi"] for r in rows} == {"0"} and {r["host"] for r in rows} == {"n1", "n2"}


def test_cray_shasta_pmi_from_a_site_that_lists_it(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    offered = testbed.run_as_user(["srun", "--mpi=list"])
    assert "cray_shasta" in offered.stdout + offered.stderr
    job = example(testbed, user_dir, "mpi-cray-shasta")
    lib = "/usr/lib/x86_64-linux-gnu/libz.so.1"  # in the nodes' Apptainer rootfs
    show = [
        "sh",
        "-c",
        'echo "pmi rank=$SLURM_PROCID mpi=$SLURM_MPI_TYPE libs=$(ls /.singularity.d/libs | tr "\\n" ,)"',
    ]
    script = render(testbed, job, f"image={busybox['ref']}", argv_set("command", show),
                    f"apptainer_env.APPTAINER_CONTAINLIBS={lib}",
                    "resources.ntasks_per_node=2")  # fmt: skip
    assert "srun --mpi=cray_shasta" in script and f"export APPTAINER_CONTAINLIBS={lib}" in script
    rows = _rank_lines(run(testbed, job), "pmi")
    assert len(rows) == 4 and {r["mpi"] for r in rows} == {"cray_shasta"}
    assert all("libz.so.1" in r["libs"] for r in rows)


def test_srun_cpu_bind(testbed: Testbed, user_dir: Path, busybox: dict[str, Any]) -> None:
    job = example(testbed, user_dir, "srun-cpu-bind")
    show = [
        "sh",
        "-c",
        'echo "bound rank=$SLURM_PROCID type=$SLURM_CPU_BIND_TYPE dist=$SLURM_DISTRIBUTION"',
    ]
    flavor = f"mpi.flavor={testbed.srun_mpi[0]}"  # Open MPI needs pmix: MPICH on 26.05
    script = render(testbed, job, f"image={busybox['ref']}", flavor, argv_set("command", show))
    assert "--cpu-bind=mask_cpu:0xf,0xf0 --distribution=block:cyclic" in script
    log = run(testbed, job)
    rows = _rank_lines(log, "bound")
    assert len(rows) == 4, log
    assert {r["type"] for r in rows} == {"mask_cpu:"} and {r["dist"] for r in rows} == {
        "block:cyclic"
    }


def test_environment_computed_on_the_node(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any]
) -> None:
    job = example(testbed, user_dir, "env-on-node")
    show = ["sh", "-c", 'echo "env rank=$RANK local=$LOCAL_RANK master=$MASTER_ADDR '
            'world=$WORLD_SIZE ext=$TORCH_EXTENSIONS_DIR scratch=$SCRATCH host=$(hostname)"']  # fmt: skip
    render(testbed, job, f"image={busybox['ref']}", argv_set("command", show))
    rows = _rank_lines(run(testbed, job, env={"SCRATCH": "/scratch/of-alice"}), "env")
    assert [r["rank"] for r in rows] == ["0", "1", "2", "3"]
    assert {r["master"] for r in rows} == {"n1"} and {r["world"] for r in rows} == {"4"}
    assert [r["ext"] for r in rows] == [f"/tmp/torch-ext-{i}" for i in range(4)]
    assert {r["scratch"] for r in rows} == {"/scratch/of-alice"}  # host_env forwarded
    assert sorted(r["local"] for r in rows) == ["0", "0", "1", "1"]


# ------------------------------------------------------------------ site, time forms


def test_site_pmi_types_are_what_srun_offers(testbed: Testbed) -> None:
    """srun --mpi=list: one plugin per line, then the versioned pmix names."""
    done = testbed.run_as_user(["srun", "--mpi=list"])
    text = done.stdout + done.stderr
    offered = set(re.findall(r"^\s+([a-z][a-z0-9_]*)\s*$", text, re.M))
    versions = re.search(r"versions available:\s*(.*)$", text, re.M)
    offered |= set(versions.group(1).replace(",", " ").split()) if versions else set()
    listed = _toml.load_bytes(testbed.site_config.read_bytes())["mpi"]["pmi_types"]
    assert offered == set(listed), text


@pytest.mark.parametrize(
    ("time", "limit"),
    [("0-47:00:00", "1-23:00:00"), ("47:00:00", "1-23:00:00"), ("1:90:00", "02:30:00"),
     ("90:30", "01:31:00"), ("2-3", "2-03:00:00"), ("30", "00:30:00")],
)  # fmt: skip
def test_every_slurm_time_form(
    testbed: Testbed, user_dir: Path, busybox: dict[str, Any], time: str, limit: str
) -> None:
    job = write(testbed, user_dir / "t.toml", f'image = "{busybox["ref"]}"\ncommand = ["true"]\n')
    script = render(testbed, job, f"resources.time={time}", "extra_sbatch=--hold")
    job_id = testbed.sbatch(str(job.with_suffix(".sh")), cwd=user_dir)
    try:
        shown = testbed.run_as_user(["scontrol", "show", "job", job_id]).stdout
        assert f"TimeLimit={limit} " in shown, (script.splitlines()[3], shown)
    finally:
        testbed.run_as_user(["scancel", job_id])
