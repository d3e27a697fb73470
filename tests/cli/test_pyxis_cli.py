"""``hpcbridge sbatch`` and ``hpcbridge srun`` through the real command line (no testbed):
--wrap, scripts on standard input, srun steps, notes, refusals in pyxis words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpcbridge import runner
from tests.golden.support import SITE

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))


def sif(path: Path) -> Path:
    path.write_bytes(
        b"#!/usr/bin/env run-singularity\n".ljust(32, b"\n") + b"SIF_MAGIC" + bytes(64)
    )
    return path


def run(tmp: Path, *args: str, stdin: str | None = None, **extra: str) -> runner.Completed:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("srun", "apptainer"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "HPCBRIDGE_SITE_CONFIG": str(SITE),
        **extra,
    }
    return runner.run([HPCBRIDGE, *args], env=env, cwd=tmp, check=False, timeout=120, input=stdin)


def test_wrap(tmp_path: Path) -> None:
    sif(tmp_path / "img.sif")
    done = run(
        tmp_path, "sbatch", "--dry-run", "--container-image=./img.sif", "--wrap", "echo hi $HOME"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "hpcb_body='#!/bin/sh\n# This script was created by sbatch --wrap.\n\necho hi $HOME\n'"
        in done.stdout
    )
    assert '"$hpcb_script_dir"/wrap.sh &' in done.stdout
    runner.run(["bash", "-n", "-c", done.stdout])


def test_script_on_standard_input(tmp_path: Path) -> None:
    sif(tmp_path / "img.sif")
    body = "#!/bin/bash\n#SBATCH --time=5\nsrun --container-image=./img.sif hostname\n"
    done = run(tmp_path, "sbatch", "--dry-run", "-p", "cpu", stdin=body)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#!/bin/bash\n#SBATCH --time=5\n")
    assert f"# Image ./img.sif: {tmp_path}/img.sif" in done.stdout
    assert '"$hpcb_script_dir"/stdin.sh &' in done.stdout
    assert 'export PATH="$hpcb_script_dir/bin:$PATH"' in done.stdout  # the script runs on the host


def test_a_script_without_container_steps_runs_on_the_host_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\nsrun hostname\n")
    done = run(tmp_path, "sbatch", "--dry-run", "run.sh")
    assert done.returncode == 0, done.stderr
    assert "hpcbridge: note: no srun step asks for a container" in done.stderr


@pytest.mark.parametrize(
    ("script", "args", "needle"),
    [
        (
            "#!/bin/sh\n#SBATCH --container-mounts=/scratch/$USER:/s\n#SBATCH --container-image=a:1\ntrue\n",
            [],
            "script line 2: '/scratch/$USER:/s': sbatch does not expand $VARIABLES in #SBATCH lines",
        ),
        ("#!/bin/sh\nsrun --container-image=a:1 --container-mounts=/etc:/e true\n", [], "script line 2: --container-mounts source /etc is denied"),
        ("#!/bin/sh\nsrun --container-image=a:1 --container-mounts=tmpfs:/t true\n", [], "script line 2: --container-mounts entry 'tmpfs:/t'"),
        ("#!/bin/sh\nsrun --container-image=dockerd://x:1 true\n", [], "docker save"),
        ("#!/bin/sh\ntrue\n", ["-p", "gpuu"], "--partition=gpuu is not a partition of this site (did you mean 'gpu'?"),
        ("#!/bin/sh\n#SBATCH --gres=gpu:1\ntrue\n", ["-p", "cpu"], "GPUs asked for (--gres/--gpus) on partition 'cpu'"),
        ("#!/bin/sh\nsrun true\n", ["--container-image=a:1"], "script line 2: srun inside a script that runs in a container"),
        ("echo no shebang\n", [], "does not start with #!"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_in_pyxis_words(
    tmp_path: Path, script: str, args: list[str], needle: str
) -> None:
    (tmp_path / "run.sh").write_text(script)
    done = run(tmp_path, "sbatch", "--dry-run", *args, "run.sh")
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.splitlines()) == 1 and needle in done.stderr, done.stderr
    assert "entry [0]" not in done.stderr and "{task}" not in done.stderr
    assert done.stdout == ""


def test_srun_dry_run_prints_the_srun_line(tmp_path: Path) -> None:
    sif(tmp_path / "img.sif")
    (tmp_path / "data").mkdir()
    done = run(
        tmp_path, "srun", "--dry-run", "-p", "gpu", "--gres=gpu:1", "--container-image=./img.sif",
        "--container-mounts=./data:/data", "--pty", "bash", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = done.stdout
    assert line.startswith(f"{tmp_path}/bin/srun -p gpu --gres=gpu:1 --pty /bin/bash -c")
    assert f" {tmp_path}/img.sif exec " in line and "--nv" in line
    assert f"-B {tmp_path}/data:/data" in line and line.rstrip().endswith("-- bash --dry-run")


def test_srun_refusals(tmp_path: Path) -> None:
    done = run(tmp_path, "srun", "--dry-run", "--container-image=a:1")
    assert done.returncode == 3 and "no command after the srun options" in done.stderr
    missing = run(tmp_path, "srun", "--dry-run", "--container-image=./nope.sqsh", "true")
    assert missing.returncode == 3 and "nope.sqsh does not exist" in missing.stderr
