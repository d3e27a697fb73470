"""The command line with the job keys of issue 11: a job file named hpcbridge.toml, local
squashfs images, run mode, and run-time values, through the real ``hpcbridge`` CLI."""

from __future__ import annotations

import sys
from pathlib import Path

from hpcbridge import runner
from tests.golden.support import SITE

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))


def hpcbridge(tmp: Path, *args: str) -> runner.Completed:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "HPCBRIDGE_SITE_CONFIG": str(SITE),
        "LANG": "C.UTF-8",
    }
    return runner.run([HPCBRIDGE, *args], env=env, cwd=tmp, check=False, timeout=60)


def squashfs(path: Path) -> Path:
    path.write_bytes(b"hsqs" + bytes(4092))  # squashfs magic: enough for hpcbridge
    return path


def test_a_job_file_named_hpcbridge_toml_works(tmp_path: Path) -> None:
    squashfs(tmp_path / "tools.sqsh")
    (tmp_path / "hpcbridge.toml").write_text(
        'image = "tools.sqsh"\ncommand = ["true"]\n[resources]\ntime = "0-47:00:00"\n'
    )
    done = hpcbridge(tmp_path, "render", "hpcbridge.toml")
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --job-name=hpcbridge\n" in done.stdout
    assert "#SBATCH --time=1-23:00:00\n" in done.stdout
    assert f"  {tmp_path}/tools.sqsh\n" in done.stdout  # run as it is, not converted
    shown = hpcbridge(tmp_path, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert "hpcbridge.toml is a job file" in shown.stderr


def test_local_images_by_content_and_run_mode(tmp_path: Path) -> None:
    squashfs(tmp_path / "legacy.simg")
    (tmp_path / "job.toml").write_text(
        'image = "legacy.simg"\nrun = ["--say", "moo {task}"]\narray = "0-1"\n'
        '[resources]\ntime = "10"\n'
    )
    done = hpcbridge(tmp_path, "render", "job.toml", "-o", "job.sh")
    assert done.returncode == 0, done.stderr
    script = (tmp_path / "job.sh").read_text()
    assert "  apptainer run\n" in script
    assert "  --say 'moo '\"${hpcb_task}\"\n" in script
    (tmp_path / "job.toml").write_text('image = "./legacy.img"\ncommand = ["true"]\n')
    (tmp_path / "legacy.img").write_bytes(b"\x00" * 4096)  # an ext3 image is no rootfs image
    bad = hpcbridge(tmp_path, "render", "job.toml", "-o", "bad.sh")
    assert bad.returncode != 0
    assert bad.stderr.count("\n") == 1 and "is not a SIF file or a squashfs image" in bad.stderr
    assert not (tmp_path / "bad.sh").exists()


def test_run_time_sources_are_not_checked_on_the_login_node(tmp_path: Path) -> None:
    squashfs(tmp_path / "img.sqsh")
    (tmp_path / "job.toml").write_text(
        'image = "img.sqsh"\ncommand = ["true"]\n'
        'binds = ["$TMPDIR/nowhere:/stage:ro", "/local/$SLURM_JOB_ID/{task}:/work"]\n'
    )
    done = hpcbridge(tmp_path, "render", "job.toml")
    assert done.returncode == 0, done.stderr
    assert '-B "${hpcb_env_TMPDIR}"/nowhere:/stage:ro' in done.stdout
    assert "exists 'binds[0].src = $TMPDIR/nowhere'" in done.stdout
    assert "mkdir 'binds[1].src = /local/$SLURM_JOB_ID/{task}'" in done.stdout
