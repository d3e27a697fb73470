"""``hpcbridge render`` and ``hpcbridge sbatch --dry-run`` through the real command line."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from hpcbridge import runner
from tests.golden.support import SITE

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))
JOB = """
name = "cli"
image = "img.sif"
command = ["python3", "-c", "print(1)", "a b"]
inputs = ["a.txt", "b.txt"]
[resources]
time = "00:10:00"
"""


def _sif(path: Path) -> None:
    path.write_bytes(
        b"#!/usr/bin/env run-singularity\n".ljust(32, b"\n") + b"SIF_MAGIC" + bytes(64)
    )


def run(tmp_path: Path, *args: str, **extra_env: str) -> runner.Completed:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HPCBRIDGE_SITE_CONFIG": str(SITE),
        **extra_env,
    }
    return runner.run([HPCBRIDGE, *args], env=env, cwd=tmp_path, check=False, timeout=120)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    _sif(tmp_path / "img.sif")
    for name in ("a.txt", "b.txt"):  # inputs must exist (render refuses a missing one)
        (tmp_path / name).write_text(name)
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return path


def test_render_prints_the_same_text_as_submit_dry_run(tmp_path: Path, job: Path) -> None:
    rendered = run(tmp_path, "render", str(job))
    assert rendered.returncode == 0, rendered.stderr
    dry = run(tmp_path, "submit", str(job), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert rendered.stdout == dry.stdout
    assert rendered.stdout.startswith("#!/bin/bash\n#SBATCH --job-name=cli\n")
    assert "#SBATCH --array=0-1" in rendered.stdout
    assert str(tmp_path / "img.sif") in rendered.stdout


def test_render_output_file_and_set(tmp_path: Path, job: Path) -> None:
    out = tmp_path / "job.sh"
    done = run(tmp_path, "render", str(job), "-o", str(out), "--set", "resources.mem=2G")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o755
    assert "#SBATCH --mem=2G" in out.read_text()
    # the script is valid bash
    runner.run(["bash", "-n", str(out)])


def test_site_hook_template_adds_lines_to_rendered_scripts(tmp_path: Path, job: Path) -> None:
    """A template directory holding only site-hook.sh.j2 (docs/site-admin.md, "The site hook")."""
    site = tmp_path / "site-templates"
    site.mkdir()
    (site / "site-hook.sh.j2").write_text(
        "\n# ---- site\nmodule purge\necho {{ image_ref|shquote }}\n"
    )
    plain = run(tmp_path, "render", str(job))
    hooked = run(tmp_path, "render", str(job), HPCBRIDGE_TEMPLATES_DIR=str(site))
    assert plain.returncode == 0 and hooked.returncode == 0, plain.stderr + hooked.stderr
    anchor = 'export HPCBRIDGE_INPUT_STEM="$hpcb_input_stem"\n'
    added = f"\n# ---- site\nmodule purge\necho {tmp_path}/img.sif\n"
    assert hooked.stdout == plain.stdout.replace(anchor, anchor + added)
    assert added in hooked.stdout


def test_help_lists_render_and_sbatch(tmp_path: Path) -> None:
    done = run(tmp_path, "--help")
    assert "render" in done.stdout and "sbatch" in done.stdout
    assert "--container-image" in run(tmp_path, "sbatch", "--help").stdout


def test_sbatch_dry_run_prints_the_script(tmp_path: Path) -> None:
    _sif(tmp_path / "img.sif")
    (tmp_path / "data").mkdir()
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n#SBATCH --time=5\necho 'hi there'\n")
    done = run(
        tmp_path, "sbatch", "-p", "cpu", "--container-image=./img.sif",
        "--container-mounts=./data:/data:ro", "--dry-run", "run.sh", "x y",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("#!/bin/bash\n#SBATCH --time=5\n")
    assert "# sbatch options given on the command line: -p cpu" in text
    assert "--container-mounts=./data:/data:ro" in text  # read by the shim in the job
    assert "\"$hpcb_script_dir\"/run.sh 'x y' &" in text
    runner.run(["bash", "-n", "-c", text])


SBATCH_BAD = [
    (["--container-image=127.0.0.1:9#x:1", "--container-mounts=tmpfs:/t", "run.sh"], "tmpfs"),
    (["--container-image=./u.sqsh", "run.sh"], "u.sqsh does not exist"),
    (["--container-image=127.0.0.1:9#x:1", "missing.sh"], "missing.sh"),
    (["--container-image=dockerd://x:1", "run.sh"], "docker save"),
    (["--container-image=127.0.0.1:9#x:1", "--container-name=a/b", "run.sh"], "--container-name"),
    (
        ["--container-image=127.0.0.1:9#x:1", "--container-mounts=/nonexistent/m:/m", "run.sh"],
        "/nonexistent/m",
    ),
    (["--container-image=127.0.0.1:9#x:1", "--container-mounts=/etc:/e", "run.sh"], "'/etc'"),
    (["--container-image=127.0.0.1:9#x:1", "--container-env=1BAD", "run.sh"], "'1BAD'"),
    (["--container-frob=1", "run.sh"], "--container-frob"),
    (["--container-image=./nope.sif", "run.sh"], "nope.sif"),
]


@pytest.mark.parametrize(("args", "needle"), SBATCH_BAD)
def test_sbatch_bad_input_is_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\ntrue\n")
    done = run(tmp_path, "sbatch", "--dry-run", *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert needle in done.stderr, done.stderr
    assert done.stdout == ""
