"""``status`` and ``list`` print for schema-1 records what the previous version printed.

The records, their ``status.json`` and the expected text were written by
hpcbridge 0f5ce17 on the testbed (tests/fixtures/records/v1/generate_v1.py).
Every task of them is finished and remembered, so no Slurm client is needed:
PATH holds none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "records" / "v1"
IDS: dict[str, str] = json.loads((V1 / "ids.json").read_text())


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v1-state")
    for scenario, sub_id in IDS.items():
        sub = root / "submissions" / sub_id
        (sub / "outcomes").mkdir(parents=True)
        (sub / "logs").mkdir()
        for name in ("record.json", "status.json"):
            shutil.copyfile(V1 / scenario / name, sub / name)
    return root


def run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        HPCBRIDGE_STATE_DIR=str(state),
        XDG_CONFIG_HOME=str(state / "no-config"),
        PATH="/nonexistent",
    )
    env.pop("HPCBRIDGE_SITE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "hpcbridge", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=state,
        timeout=60,
    )


@pytest.mark.parametrize("scenario", sorted(IDS))
def test_status_text_is_unchanged(state: Path, scenario: str) -> None:
    done = run(state, "status", IDS[scenario])
    assert done.stderr == ""
    assert done.stdout == (V1 / f"status-{scenario}.txt").read_text()
    assert done.returncode == (0 if scenario in ("plain", "rerun") else 1)


def test_list_text_is_unchanged(state: Path) -> None:
    done = run(state, "list")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (V1 / "list.txt").read_text()


def test_status_json_reads_them_too(state: Path) -> None:
    done = run(state, "status", "--json", IDS["chunked"])
    sub = json.loads(done.stdout)["submissions"][0]
    assert sub["failed_tasks"] == "3,7" and sub["children"] == [IDS["resubmit"]]
    assert sub["latest"]["failed_tasks"] == "3,7" and sub["source"] == ""
