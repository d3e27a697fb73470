"""``hpcbridge report`` on records whose tasks are all finished and remembered (no Slurm
client on PATH: accounting cannot be asked, the report says so and uses the outcome files,
whose end lines carry the cgroup figures the job script wrote)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hpcbridge.report.jsonout import load_schema
from hpcbridge.tracking.record import ChunkRecord, JobSource, Record, record_to_dict

PARENT = "20260101-000000-aaaaaa"
CHILD = "20260101-001000-bbbbbb"
T0 = 1_800_000_000
MIB = 1024 * 1024
JOB = 'name = "rep"\nimage = "docker://x/y:1"\ncommand = ["true"]\narray = "0-29"\n'


def write_submission(
    root: Path, sub_id: str, tasks: dict[int, tuple[str, int, str]], **kw: object
) -> None:
    """``tasks``: task -> (state, exit code, reason); outcome files with cgroup figures."""
    d = root / "submissions" / sub_id
    (d / "outcomes").mkdir(parents=True)
    (d / "logs").mkdir()
    chunk = ChunkRecord(
        indices=kw.pop("indices", "0-29"), job_id=kw.pop("job", "100"), mem=256, time_limit=600
    )  # type: ignore[arg-type]
    rec = Record(
        id=sub_id, name="rep", state="submitted", job=JobSource(text=JOB), chunks=[chunk], **kw
    )  # type: ignore[arg-type]
    rec.set_tasks()
    (d / "record.json").write_text(json.dumps(record_to_dict(rec)))
    known = {str(t): [s, c, None, r, f"{chunk.job_id}_{t}"] for t, (s, c, r) in tasks.items()}
    (d / "status.json").write_text(json.dumps(known))
    for t, (state, code, _) in tasks.items():
        start = T0 + 10 * t
        (d / "outcomes" / f"{t}.start").write_text(f"{start} {100 + t} 100 n{t % 2 + 1}\n")
        peak = (256 if state == "OUT_OF_MEMORY" else 40 + 3 * t) * MIB
        cpu = 5_000_000 + t * 100_000
        (d / "outcomes" / f"{t}.end").write_text(
            f"{start + 20 + t} {code} exit mem_peak={peak} cpu_usec={cpu}\n"
        )


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-state")
    tasks = {t: ("COMPLETED", 0, "") for t in range(30)}
    tasks[3] = ("FAILED", 3, "exit code 3")
    tasks[7] = ("OUT_OF_MEMORY", 137, "OutOfMemory")
    write_submission(root, PARENT, tasks, children=[CHILD])
    again = {3: ("COMPLETED", 0, ""), 7: ("COMPLETED", 0, "")}
    write_submission(root, CHILD, again, kind="resubmit", parent=PARENT, indices="3,7", job="200")
    return root


def run(state: Path, *args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        HPCBRIDGE_STATE_DIR=str(state),
        XDG_CONFIG_HOME=str(state / "no-config"),
        PATH="/nonexistent",
    )
    env.pop("HPCBRIDGE_SITE_CONFIG", None)
    argv = (
        [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "hpcbridge", *args]
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=state, timeout=120)


def test_text_report(state: Path) -> None:
    done = run(state, "report", PARENT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80
    text = " ".join(done.stdout.split())  # phrases may wrap
    assert f"report {PARENT} rep" in text
    assert "30 task(s), 32 finished attempt(s) in 2 submission(s)" in text
    assert "latest attempts: 30 completed" in text
    assert "accounting: not reachable (command not found: 'scontrol')" in text  # no Slurm
    assert (
        "failures by reason:" in text and "OUT_OF_MEMORY" in text and "FAILED: exit code 3" in text
    )
    assert "memory: 256M -> " in text and "runtime histogram (32 finished attempts" in text
    assert "unknown, not estimated" not in text  # the end lines carried every figure


def test_json_report_validates(state: Path) -> None:
    done = run(state, "report", "last", "--json")  # "last" is the child: its own report
    data = json.loads(done.stdout)
    jsonschema.validate(data, load_schema())
    assert data["id"] == CHILD and data["tasks"] == 2
    parent = json.loads(run(state, "report", "aaaaaa", "--json").stdout)
    jsonschema.validate(parent, load_schema())
    assert parent["submissions"] == [PARENT, CHILD]
    seven = [a for a in parent["attempts"] if a["task"] == 7]
    assert [(a["attempt"], a["state"], a["peak_mem_source"]) for a in seven] == [
        (1, "OUT_OF_MEMORY", "cgroup"), (2, "COMPLETED", "cgroup"),
    ]  # fmt: skip
    assert seven[1]["cpu_time_s"] == 5.7 and seven[1]["node"] == "n2"


def test_html_report_is_written(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = run(state, "report", PARENT, "--html", str(out))
    assert done.returncode == 0, done.stderr
    assert f"HTML report: {out}" in done.stdout
    page = out.read_text()
    assert page.count('src="data:image/png;base64,') == 4 and "http" not in page


def test_html_without_matplotlib_fails_in_one_line_and_writes_nothing(
    state: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    block = "import sys; sys.modules['matplotlib'] = None; from hpcbridge.cli import main; main()"
    done = run(state, "report", PARENT, "--html", str(out), code=block)
    assert done.returncode == 7
    assert done.stderr.count("\n") == 1 and "needs matplotlib" in done.stderr
    assert "pip install 'hpcbridge[report]'" in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_input(state: Path, tmp_path: Path) -> None:
    done = run(state, "report", "nosuch")
    assert done.returncode == 6 and "no submission 'nosuch'" in done.stderr
    done = run(state, "report", PARENT, "--html", str(tmp_path / "missing" / "r.html"))
    assert done.returncode == 3 and "cannot write" in done.stderr and done.stdout == ""


def test_rerun_right_size_refuses_what_it_cannot_size(state: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    write_submission(
        root, "20260101-002000-cccccc", {0: ("COMPLETED", 0, "")}, kind="sbatch", indices="0"
    )
    done = run(root, "rerun", "cccccc", "--right-size")
    assert done.returncode == 3 and "was made by `hpcbridge sbatch`" in done.stderr
    assert len(list((root / "submissions").iterdir())) == 1  # nothing new recorded
    done = run(state, "rerun", "--from", str(tmp_path), "--right-size")
    assert done.returncode == 2 and "--right-size needs a submission ID" in done.stderr
