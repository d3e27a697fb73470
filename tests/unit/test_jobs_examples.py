"""docs/examples: every job file renders, into what it shows; docs/jobs.md lists every key."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hpcbridge import _toml
from hpcbridge.config import Config, load_config
from hpcbridge.job.load import job_from_dict
from hpcbridge.job.schema import documented_keys
from hpcbridge.render import RenderedJob, ResolvedImage, TrackingContext, render_job
from hpcbridge.render.flags import parse_command
from tests.golden.support import container_argvs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
SITES = REPO / "site-configs"
#: The site each example is written for (default: the testbed's).
SITE_OF = {"mpi-cray-shasta": "cray-ex.toml"}
IMAGE = ResolvedImage("x", "sha256:" + "1" * 64, "/cache/sif/" + "1" * 64 + ".sif", "2" * 64)

#: What each example's script must say (substrings of the rendered script).
SHOWS: dict[str, list[str]] = {
    "ext3-overlay-array": ["--overlay /e/pyenv.ext3:ro", "#SBATCH --array="],
    "ext3-overlay-install": ["--overlay /e/pyenv.ext3\n"],
    "overlay-per-task": ['--overlay /e/overlays/task"${hpcb_task}".ext3'],
    "mpi-rank-overlays": ['--overlay /e/overlays/rank"${hpcb_at_rank}".ext3', "srun --mpi=pmix"],
    "run-mode": ["apptainer run", '--epochs 3 --checkpoint /ckpt/task"${hpcb_task}"'],
    "local-simg": ["# Image: /e/images/legacy-tools.simg"],
    "tmpdir-staging": ['-B "${hpcb_env_TMPDIR}"/stage:/stage:ro', 'mkdir -p "$TMPDIR/stage"'],
    "image-src-bind": ["-B /e/genomes.sqsh:/ref:ro,image-src=/indexes"],
    "contain-workdir": [
        "  --contain\n",
        '--workdir /local/"${hpcb_env_SLURM_JOB_ID}"',
        "--pwd /data",
    ],
    "mpi-none": ["srun --mpi=none"],
    "mpi-cray-shasta": ["srun --mpi=cray_shasta", "export APPTAINER_CONTAINLIBS="],
    "srun-cpu-bind": ["--cpu-bind=mask_cpu:0xf,0xf0 --distribution=block:cyclic"],
    "env-on-node": [
        "hpcb_env_command APPTAINERENV_MASTER_ADDR MASTER_ADDR",
        'export APPTAINERENV_RANK="${hpcb_at_rank}"',
        "${!NCCL_@}",
    ],
}


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.toml"))


def site_config(name: str, tmp: Path) -> Config:
    site = SITES / SITE_OF.get(name, "testbed.toml")
    env = {"HOME": str(tmp), "USER": "alice", "HPCBRIDGE_SITE_CONFIG": str(site)}
    return load_config(cwd=tmp, environ=env)


def render_example(name: str, tmp: Path) -> RenderedJob:
    data = _toml.load_bytes((EXAMPLES / f"{name}.toml").read_bytes())
    if "inputs" in data:  # the globs name files the example does not ship
        data["inputs"] = [f"{name}/a.csv", f"{name}/b c.csv"]
    job = job_from_dict(data, job_dir="/e", source=f"/e/{name}.toml")
    image = ResolvedImage(job.image, IMAGE.digest, IMAGE.sif_path, IMAGE.sif_sha256)
    tracking = TrackingContext("hpcb-x", "/state/outcomes")
    return render_job(job, site_config(name, tmp), image=image, tracking=tracking)


def test_every_example_is_described() -> None:
    assert set(example_names()) == set(SHOWS)
    doc = (REPO / "docs" / "jobs.md").read_text(encoding="utf-8")
    for name in example_names():
        assert f"`{name}.toml`" in doc, name


@pytest.mark.parametrize("name", example_names())
def test_example_renders_what_it_shows(name: str, tmp_path: Path) -> None:
    cfg = site_config(name, tmp_path)
    script = render_example(name, tmp_path).script
    for needle in SHOWS[name]:
        assert needle in script, f"{name}: {needle!r} not in the script"
    for argv in container_argvs(script):
        parse_command(argv, cfg.runtime.flavor, cfg.runtime.version)
    text = (EXAMPLES / f"{name}.toml").read_text(encoding="utf-8")
    assert text.startswith("# "), "every example says what it shows"


def test_rendered_example_is_valid_bash(tmp_path: Path) -> None:
    from hpcbridge import runner

    for name in example_names():
        path = tmp_path / f"{name}.sh"
        path.write_text(render_example(name, tmp_path).script, encoding="utf-8")
        done = runner.run(["bash", "-n", str(path)], check=False)
        assert done.returncode == 0, (name, done.stderr)


def test_jobs_md_key_table_matches_the_schema() -> None:
    doc = (REPO / "docs" / "jobs.md").read_text(encoding="utf-8")
    table = doc.split("<!-- job-keys -->", 1)[1].split("<!-- end -->", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", table, re.M)
    assert [k for k, _ in rows] == documented_keys()
    for key, becomes in rows:
        assert becomes.strip(), f"{key}: the table says nothing about what it becomes"


def test_examples_need_no_shell_quoting_help() -> None:
    """Every example's command words survive shlex: they are argv lists, never shell strings."""
    for name in example_names():
        data = _toml.load_bytes((EXAMPLES / f"{name}.toml").read_bytes())
        for arg in data.get("command") or data.get("run") or []:
            assert shlex.split(shlex.quote(arg)) == [arg]
