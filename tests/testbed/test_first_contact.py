"""The README's user path, from a built wheel, as the non-root test user.

Offline first: the wheel and its dependencies (repacked from the repo's venv,
tests/testbed/wheelhouse.py) are installed into a fresh venv inside a network
namespace with no network at all (``unshare --map-current-user --net``), then the
README's commands run there up to ``render`` of a public image nobody can fetch:
the script is printed with the image marked UNRESOLVED, one note, nothing
written.  Then with the network (the testbed registry up): ``render`` resolves
the digest and the image's WorkingDir from the manifest and config alone -- the
cache holds no blob afterwards -- and the rest of the path runs for real:
``convert``, ``submit``, ``watch`` and ``logs``, the log found where the
submitted script's ``#SBATCH --output`` says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.testbed.wheelhouse import wheelhouse

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PUBLIC = "docker://python:3.12-slim"
#: The job file of the README's first job (the image is swapped for the testbed's copy).
JOB = """\
name = "hello"
image = "{image}"
command = ["python3", "-c", "import platform, sys; print('hello from', sys.version.split()[0], 'on', platform.node())"]

[resources]
time = "00:05:00"
"""
#: The README's user commands this test runs, verbatim (the test checks they are there).
README_COMMANDS = [
    "python3 -m venv ~/hpcbridge-venv",
    "~/hpcbridge-venv/bin/pip install hpcbridge",
    "hpcbridge config example",
    "hpcbridge config example generic-cpu -o ~/hpcbridge-site.toml",
    "hpcbridge config check ~/hpcbridge-site.toml",
    "hpcbridge doctor",
    "hpcbridge render job.toml",
    "hpcbridge convert",
    "hpcbridge submit job.toml",
    "hpcbridge watch last",
    "hpcbridge logs last",
]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheelhouse")
    import click  # the dependencies are installed where click is

    site = Path(click.__file__).resolve().parents[1]
    wheelhouse(REPO, site, dest)
    for p in (dest, *dest.iterdir()):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    parent = dest
    while parent != parent.parent:  # the test user must reach it
        parent = parent.parent
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    return dest


def _sh(tb: Testbed, script: str, *, offline: bool, env: dict[str, str], timeout: float = 300):  # type: ignore[no-untyped-def]
    argv = ["sh", "-c", script]
    if offline:
        argv = ["unshare", "--map-current-user", "--net", "--", *argv]
    return tb.run_as_user(argv, env=env, check=False, timeout=timeout)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "hpcbridge-venv" not in p.parts}


def test_readme_has_the_commands_this_test_runs() -> None:
    text = README.read_text()
    for command in README_COMMANDS:
        assert command in text, command
    assert JOB.format(image=PUBLIC) in text  # the README's job file, as this test writes it
    assert "make demo" in text and "make test" in text


def test_readme_user_path_from_the_wheel_offline_then_online(
    testbed: Testbed, user_dir: Path, wheels: Path
) -> None:
    tb = testbed
    venv = user_dir / "hpcbridge-venv"
    (whl,) = wheels.glob("hpcbridge-*.whl")
    login_path = f"{venv}/bin:{tb.login_path()}"  # no runtime on this "login node"
    env = {"PATH": login_path, "HOME": str(user_dir), "SLURM_CONF": tb.env["SLURM_CONF"]}
    (user_dir / "job.toml").write_text(JOB.format(image=PUBLIC))
    os.chown(user_dir / "job.toml", tb.user.uid, tb.user.gid)
    install = f"""set -e
cd {user_dir}
python3 -m venv ~/hpcbridge-venv
~/hpcbridge-venv/bin/pip install -q --disable-pip-version-check --no-index --find-links {wheels} {whl}
hpcbridge --version
hpcbridge config example
hpcbridge config example generic-cpu -o ~/hpcbridge-site.toml
hpcbridge config check ~/hpcbridge-site.toml
hpcbridge doctor > doctor.txt || echo "doctor exit $?"
"""
    done = _sh(tb, install, offline=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "hpcbridge, version" in done.stdout and "generic-cpu" in done.stdout
    assert f"{user_dir}/hpcbridge-site.toml: ok" in done.stdout
    assert "doctor exit 1" in done.stdout  # a login node without a runtime: a warning
    doctor = (user_dir / "doctor.txt").read_text()
    assert "fine on a login node" in doctor and "srun -N1 -n1 -t 5 hpcbridge doctor" in doctor
    before = _files(user_dir)
    done = _sh(tb, f"cd {user_dir} && hpcbridge render job.toml", offline=True, env=env)
    assert done.returncode == 0, done.stderr
    note = done.stderr.splitlines()
    assert f"UNRESOLVED:{PUBLIC}" in done.stdout and "#   digest UNRESOLVED" in done.stdout
    assert len(note) == 1 and note[0].startswith(f"hpcbridge: note: image {PUBLIC} is UNRESOLVED")
    assert _files(user_dir) == before  # nothing written: no cache entry, no metadata

    # The registry reachable: the digest and WorkingDir of the testbed's python image.
    image = tb.image("debian-python")
    (user_dir / "job.toml").write_text(JOB.format(image=f"docker://{image.ref}"))
    done = _sh(tb, f"cd {user_dir} && hpcbridge render job.toml", offline=False, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    cache = user_dir / ".cache" / "hpcbridge"
    assert f"#   digest {image.digest}, SIF sha256 not converted yet" in done.stdout
    assert f"{cache}/sif/{image.digest[7:]}.sif" in done.stdout
    assert "--pwd /srv/app" in done.stdout  # the image's WorkingDir, as submit will run it
    assert [p for p in (cache / "blobs").rglob("*") if p.is_file()] == []  # no layer fetched
    _the_rest_of_the_path(tb, user_dir, env, image.digest)


def _the_rest_of_the_path(tb: Testbed, d: Path, env: dict[str, str], digest: str) -> None:
    """convert, submit, watch, logs -- on compute nodes that have the runtime."""
    assert tb.bin_dir is not None
    compute_env = {**env, "PATH": f"{env['PATH']}:{tb.bin_dir}"}
    steps = {}
    for step in ("convert --quiet", "submit job.toml", "watch last", "logs last"):
        if step.startswith("convert"):
            step = f"convert {shlex.quote(tb.image('debian-python').ref)} --quiet"
        done = _sh(tb, f"cd {d} && hpcbridge {step}", offline=False, env=compute_env, timeout=600)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        steps[step.split()[0]] = done.stdout
    assert steps["convert"].strip().endswith(f"{digest[7:]}.sif")
    assert "submitted 1 task(s) as job" in steps["submit"]
    assert re.search(r"1/1 finished", steps["watch"])
    assert "hello from 3.11" in steps["logs"]
    sub_id = steps["submit"].split(":", 1)[0]
    sub_dir = d / ".local" / "state" / "hpcbridge" / "submissions" / sub_id
    record = json.loads((sub_dir / "record.json").read_text())
    recorded = (sub_dir / record["chunks"][0]["script"]).read_text()
    (output,) = re.findall(r"^#SBATCH --output=(.*)$", recorded, re.M)
    assert output == f"{sub_dir}/logs/%x_%j.out"  # the script says where its log is ...
    logs = list((sub_dir / "logs").iterdir())
    assert len(logs) == 1 and "hello from 3.11" in logs[0].read_text()  # ... and it is there
