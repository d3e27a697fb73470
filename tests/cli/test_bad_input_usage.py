"""Bad command lines: click's usage errors as one line with the right pointer.

Each case runs the real ``hpcbridge`` executable: exit status 2 (click's usage
status), exactly one line on stderr, ``hpcbridge: error: `` first, the offending
value and the pointer in it, nothing on stdout and nothing written (no cache or
state directory appears under the fresh HOME).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpcbridge import runner

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))
JOB = 'name = "j"\nimage = "img.sif"\ncommand = ["true"]\n'

# (id, argv after `hpcbridge`, texts the one line must contain)
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    (
        "render-partition",
        ["render", "--partition", "debug", "job.toml"],
        ("render: no option --partition", "use --set resources.partition=NAME"),
    ),
    (
        "render-partition-equals",
        ["render", "--partition=debug", "job.toml"],
        ("no option --partition", "--set resources.partition=NAME"),
    ),
    (
        "render-short-p",
        ["render", "-p", "debug", "job.toml"],
        ("no option -p", "resources.partition"),
    ),
    (
        "submit-cpus-per-task",
        ["submit", "--cpus-per-task", "4", "job.toml"],
        ("submit: no option --cpus-per-task", "--set resources.cpus_per_task=N"),
    ),
    ("submit-mem", ["submit", "--mem=4G", "job.toml"], ("--mem", "--set resources.mem=SIZE")),
    (
        "render-time",
        ["render", "--time", "1:00:00", "job.toml"],
        ("--time", "--set resources.time=HH:MM:SS"),
    ),
    ("render-array", ["render", "--array", "0-9", "job.toml"], ("--array", "--set array=")),
    ("render-job-name", ["render", "--job-name", "x", "job.toml"], ("--job-name", "--set name=")),
    ("doctor-gpus", ["doctor", "--gpus", "2", "job.toml"], ("--gpus", "--set resources.gpus=N")),
    (
        "render-typo",
        ["render", "--outptu", "x.sh", "job.toml"],
        ("--outptu", "did you mean --output"),
    ),
    (
        "convert-partition",
        ["convert", "--partition", "x", "img"],
        ("convert: no option --partition", "hpcbridge convert --help"),
    ),
    ("unknown-command", ["rendr", "job.toml"], ("no command 'rendr'", "hpcbridge render")),
    (
        "missing-argument",
        ["convert"],
        ("convert: missing argument REF", "usage: hpcbridge convert [OPTIONS] REF"),
    ),
    ("missing-option-value", ["images", "prune", "--max-size"], ("--max-size", "--max-size VALUE")),
    (
        "bad-choice",
        ["convert", "--compression", "brotli", "img"],
        ("'brotli'", "gzip", "hpcbridge convert --help"),
    ),
    ("bad-integer", ["convert", "--level", "max", "img"], ("'max'", "--level")),
    (
        "extra-argument",
        ["render", "job.toml", "other.toml"],
        ("other.toml", "usage: hpcbridge render"),
    ),
    ("rerun-neither", ["rerun"], ("rerun: give either a submission ID or --from BUNDLE",)),
    ("offline-without-dry-run", ["submit", "--offline", "job.toml"], ("--offline", "--dry-run")),
    ("retry-out-of-range", ["submit", "--retry", "99", "job.toml"], ("99", "--retry", "0<=x<=20")),
]


def run(tmp_path: Path, argv: list[str]) -> runner.Completed:
    (tmp_path / "job.toml").write_text(JOB)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
    return runner.run([HPCBRIDGE, *argv], env=env, cwd=tmp_path, check=False, timeout=60)


def test_corpus_ids_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_usage_error_is_one_line(tmp_path: Path, argv: list[str], needles: tuple[str, ...]) -> None:
    done = run(tmp_path, argv)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hpcbridge: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "home").exists()


def test_a_group_without_its_command_shows_its_help(tmp_path: Path) -> None:
    done = run(tmp_path, ["images"])
    assert done.returncode == 2
    assert "Usage: hpcbridge images" in done.stdout + done.stderr
    assert "list" in done.stdout + done.stderr
