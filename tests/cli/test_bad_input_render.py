"""Bad-input corpus for ``hpcbridge render``, through the real command line.

Each case: exit status != 0, exactly one line on stderr that names the offending
value (and, after it, the fix), no traceback, nothing on stdout, no -o file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpcbridge import runner
from tests.golden.support import SITE

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))
GOOD = """
name = "job"
image = "img.sif"
command = ["true"]
[resources]
time = "00:10:00"
"""

# (id, job file text, extra CLI args, text the error line must contain)
CASES: list[tuple[str, str, list[str], str]] = [
    ("unknown-key", 'nmae = "x"\n' + GOOD, [], "'nmae'"),
    ("unknown-resource-key", GOOD + "tiem = 5\n", [], "'resources.tiem'"),
    ("misspelled-partition", GOOD + 'partition = "gpuu"\n', [], "'gpuu'"),
    ("time-above-max", GOOD.replace('"00:10:00"', '"3-00:00:00"'), [], "3-00:00:00"),
    ("relative-bind-dst", 'binds = ["/tmp:data"]\n' + GOOD, [], "'data'"),
    ("denied-bind", 'binds = ["/etc:/x"]\n' + GOOD, [], "'/etc'"),
    ("missing-bind-source", 'binds = ["/nonexistent/hpcb:/x"]\n' + GOOD, [], "/nonexistent/hpcb"),
    ("invalid-array", 'array = "5-1"\n' + GOOD, [], "5-1"),
    ("zero-throttle", 'array = "0-9%0"\n' + GOOD, [], "%0"),
    ("gpu-on-cpu-partition", GOOD + 'partition = "cpu"\n[gpu]\ncount = 1\n', [], "'cpu'"),
    ("gpu-vendor-mismatch", GOOD + 'partition = "gpu"\n[gpu]\nvendor = "amd"\n', [], "'amd'"),
    ("unknown-mpi-type", GOOD + '[mpi]\ntype = "srunn"\n', [], "'srunn'"),
    ("invalid-env-name", GOOD + '[env]\n"1X" = "a"\n', [], "'1X'"),
    ("reserved-env-name", GOOD + '[env]\nHOME = "/x"\n', [], "'HOME'"),
    ("runtime-env-name", GOOD + '[env]\nAPPTAINER_BIND = "/x"\n', [], "'APPTAINER_BIND'"),
    ("runtime-readonly-env", GOOD + '[env]\nEUID = "0"\n', [], "'EUID'"),
    ("runtime-owned-env", GOOD + '[env]\nPWD = "/x"\n', [], "'PWD'"),
    ("env-value-u0080", GOOD + '[env]\nX = "a\\u0080b"\n', [], "U+0080"),
    ("empty-path-env", GOOD + '[env]\nPATH = ""\n', [], "env.PATH"),
    ("newline-in-name", GOOD.replace('"job"', '"a\\nb"'), [], "name"),
    ("bad-name-chars", GOOD.replace('"job"', '"my job;rm"'), [], "'my job;rm'"),
    ("bad-time", GOOD.replace('"00:10:00"', '"1:2:3:4"'), [], "1:2:3:4"),
    ("bad-mem", GOOD + 'mem = "lots"\n', [], "'lots'"),
    ("mem-and-mem-per-cpu", GOOD + 'mem = "1G"\nmem_per_cpu = "1G"\n', [], "mem_per_cpu"),
    ("command-and-script", 'script = "echo hi"\n' + GOOD, [], "both command and script"),
    ("no-command", GOOD.replace('command = ["true"]', ""), [], "neither command nor script"),
    ("command-string", GOOD.replace('["true"]', '"echo hi"'), [], "'echo hi'"),
    ("unknown-placeholder", GOOD.replace('["true"]', '["echo", "{tsk}"]'), [], "{tsk}"),
    ("input-without-inputs", GOOD.replace('["true"]', '["cat", "{input}"]'), [], "{input}"),
    (
        "format-without-shell-equivalent",
        GOOD.replace('["true"]', '["echo", "{task:<05d}"]') + "",
        ["--set", "array=0-3"],
        "<05d",
    ),
    (
        "openmpi-pmi2",
        GOOD + '[mpi]\ntype = "srun"\npmi = "pmi2"\nflavor = "openmpi"\n',
        [],
        "'pmi2'",
    ),
    ("mpich-pmix", GOOD + '[mpi]\ntype = "srun"\npmi = "pmix"\nflavor = "mpich"\n', [], "'pmix'"),
    (
        "bind-model-without-dir",
        GOOD + '[mpi]\ntype = "mpirun"\nmodel = "bind"\n',
        [],
        "host_mpi_dir",
    ),
    ("unknown-mpi-flavor", GOOD + '[mpi]\ntype = "srun"\nflavor = "intelmpi"\n', [], "'intelmpi'"),
    ("set-unknown-key", GOOD, ["--set", "resources.tim=1"], "'resources.tim'"),
    ("set-without-equals", GOOD, ["--set", "resources.time"], "'resources.time'"),
    ("no-image", GOOD.replace('image = "img.sif"', ""), [], "no image"),
    ("missing-sif", GOOD.replace("img.sif", "/nonexistent/x.sif"), [], "/nonexistent/x.sif"),
    ("not-a-sif", GOOD.replace("img.sif", "notsif.sif"), [], "notsif.sif"),
    ("extra-sbatch-owned-option", 'extra_sbatch = ["--time=5"]\n' + GOOD, [], "--time=5"),
    (
        "extra-sbatch-hetjob",
        'extra_sbatch = ["--mail-user=hetjob@example.org"]\n' + GOOD,
        [],
        "hetjob",
    ),
    ("bad-dependency", 'dependencies = ["afterok:12 34"]\n' + GOOD, [], "12 34"),
    ("bad-signal", 'signal = "USR9@60"\n' + GOOD, [], "USR9"),
    ("invalid-toml", 'name = "unterminated\n' + GOOD, [], "invalid TOML"),
    ("nodes-above-max", GOOD + "nodes = 500\n", [], "500"),
    ("array-beyond-inputs", 'inputs = ["a.txt", "b.txt"]\narray = "0-5"\n' + GOOD, [], "0-5"),
    ("duplicate-bind-dst", 'binds = ["/tmp:/x", "/var/tmp:/x"]\n' + GOOD, [], "'/x'"),
    ("bad-bind-mode", 'binds = ["/tmp:/d:rx"]\n' + GOOD, [], "'rx'"),
    ("relative-workdir", 'workdir = "work"\n' + GOOD, [], "'work'"),
    ("gpu-count-zero", GOOD + 'partition = "gpu"\n[gpu]\ncount = 0\n', [], "gpu.count"),
    # issue 11: what real scripts say, and what breaks them
    ("bind-dst-root", 'binds = ["/tmp:/"]\n' + GOOD, [], "container's own /"),
    ("bind-dst-proc", 'binds = ["/tmp:/proc"]\n' + GOOD, [], "container's own /proc"),
    ("bind-dst-dev", 'binds = ["/tmp:/dev"]\n' + GOOD, [], "container's own /dev"),
    ("bind-dst-sys", 'binds = ["/tmp:/sys"]\n' + GOOD, [], "container's own /sys"),
    ("bind-dst-singularity", 'binds = ["/tmp:/.singularity.d/env"]\n' + GOOD, [], ".singularity.d"),
    ("bind-option-unknown", 'binds = ["/tmp:/d:nosuid"]\n' + GOOD, [], "'nosuid'"),
    (
        "image-src-relative",
        'binds = [{src="/tmp", dst="/d", image-src="sub"}]\n' + GOOD,
        [],
        "image-src",
    ),
    ("bind-lone-dollar", 'binds = ["/tmp/a$:/x"]\n' + GOOD, [], "write $$"),
    ("input-typo", 'inputs = ["typo.txt"]\n' + GOOD, [], "typo.txt' does not exist"),
    (
        "overlay-missing",
        'overlays = ["missing.ext3:ro"]\n' + GOOD,
        [],
        "missing.ext3' does not exist",
    ),
    ("overlay-two-writable", 'overlays = ["a.ext3", "b.ext3"]\n' + GOOD, [], "both writable"),
    ("overlay-comma", 'overlays = ["a,b.ext3:ro"]\n' + GOOD, [], "'a,b.ext3'"),
    (
        "writable-tmpfs-and-overlay",
        'overlays = ["a.ext3"]\n' + GOOD + "[apptainer]\nwritable-tmpfs = true\n",
        [],
        "writable-tmpfs",
    ),
    ("apptainer-flag-typo", GOOD + "[apptainer]\nno_home = true\n", [], "'no-home'"),
    ("apptainer-flag-managed", GOOD + '[apptainer]\nbind = "/a"\n', [], "use binds"),
    (
        "apptainer-flag-denied",
        GOOD + "[apptainer]\nfakeroot = true\n",
        [],
        "does not allow --fakeroot",
    ),
    ("apptainer-flag-too-new", GOOD + '[apptainer]\ndevice = ["x.com/gpu=all"]\n', [], "1.5"),
    (
        "apptainer-env-unknown",
        GOOD + '[apptainer_env]\nAPPTAINER_CONTAINLIB = "/l.so"\n',
        [],
        "CONTAINLIBS",
    ),
    (
        "apptainer-env-in-env",
        GOOD + '[env]\nAPPTAINER_CONTAINLIBS = "/l.so"\n',
        [],
        "[apptainer_env]",
    ),
    (
        "env-command-twice",
        GOOD + '[env]\nA = "1"\n[env_command]\nA = "echo 2"\n',
        [],
        "also set in [env]",
    ),
    ("host-env-home", 'host_env = ["HOME"]\n' + GOOD, [], "'HOME'"),
    ("pmi-unknown", GOOD + '[mpi]\ntype = "srun"\npmi = "pmi3"\n', [], "'pmi3'"),
    (
        "pmi-not-offered",
        GOOD + '[mpi]\ntype = "srun"\npmi = "pmix_v5"\n',
        [],
        "not a PMI type this site offers",
    ),
    (
        "srun-option-owned",
        GOOD + '[mpi]\ntype = "srun"\nsrun_options = ["--mpi=pmi2"]\n',
        [],
        "--mpi=pmi2",
    ),
    ("srun-option-short", GOOD + '[mpi]\ntype = "srun"\nsrun_options = ["-m"]\n', [], "'-m'"),
    (
        "srun-option-not-allowed",
        GOOD + '[mpi]\ntype = "srun"\nsrun_options = ["--propagate=ALL"]\n',
        [],
        "srun --propagate",
    ),
    ("run-and-command", 'run = ["a"]\n' + GOOD, [], "both command and run"),
    ("rank-with-format", GOOD.replace('["true"]', '["echo", "{rank:03d}"]'), [], "{rank:03d}"),
    ("pwd-and-workdir", 'pwd = "/a"\nworkdir = "/b"\n' + GOOD, [], "old name of pwd"),
    ("tarball-as-image", GOOD.replace("img.sif", "./image.tar"), [], "docker-archive:PATH"),
    ("ext3-as-image", GOOD.replace("img.sif", "data.img"), [], "data.img"),
    ("time-four-fields", GOOD.replace('"00:10:00"', '"1-2:3:4:5"'), [], "1-2:3:4:5"),
]


def _write_sif(path: Path) -> None:
    path.write_bytes(
        b"#!/usr/bin/env run-singularity\n".ljust(32, b"\n") + b"SIF_MAGIC" + bytes(64)
    )


def run_render(tmp_path: Path, text: str, args: list[str]) -> runner.Completed:
    job = tmp_path / "job.toml"
    job.write_text(text, encoding="utf-8")
    _write_sif(tmp_path / "img.sif")
    (tmp_path / "notsif.sif").write_bytes(b"not a sif at all" * 8)
    (tmp_path / "data.img").write_bytes(b"\x00" * 1024 + b"\x53\xef" * 32)  # no SIF/squashfs
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HPCBRIDGE_SITE_CONFIG": str(SITE),
        "LANG": "C.UTF-8",
    }
    return runner.run(
        [HPCBRIDGE, "render", str(job), "-o", str(tmp_path / "out.sh"), *args],
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("text", "args", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_one_clear_line(tmp_path: Path, text: str, args: list[str], needle: str) -> None:
    done = run_render(tmp_path, text, args)
    lines = done.stderr.splitlines()
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hpcbridge: error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "out.sh").exists()


def test_good_input_renders(tmp_path: Path) -> None:
    done = run_render(tmp_path, GOOD, [])
    assert done.returncode == 0, done.stderr
    script = (tmp_path / "out.sh").read_text()
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --partition=cpu" in script


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(GOOD)
    _write_sif(tmp_path / "img.sif")
    done = runner.run(
        [HPCBRIDGE, "render", str(job), "-o", str(tmp_path / "no/such/dir/x.sh")],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": str(SITE)},
        check=False,
    )
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "no/such/dir/x.sh" in done.stderr
