"""``hpcbridge recipe`` as a user runs it: files, notes on stderr, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "recipes"


def hpcbridge(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpcbridge", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
    )


def test_dockerfile_to_def_file_with_notes(tmp_path: Path) -> None:
    out = tmp_path / "image.def"
    res = hpcbridge("recipe", str(GOLDEN / "app" / "Dockerfile"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert out.read_text() == (GOLDEN / "app" / "expected.def").read_text()
    lines = res.stderr.splitlines()
    expected_notes = (GOLDEN / "app" / "notes.txt").read_text().splitlines()
    assert len(lines) == len(expected_notes)
    for line, note in zip(lines, expected_notes):
        assert line.startswith("hpcbridge: note: ") and line.endswith(note)


def test_def_detected_and_translated_to_stdout() -> None:
    res = hpcbridge("recipe", str(GOLDEN / "def-docker" / "image.def"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == (GOLDEN / "def-docker" / "expected.Dockerfile").read_text()


def test_stdin_and_explicit_direction() -> None:
    res = hpcbridge("recipe", "-", "--to", "def", stdin='FROM img\nCMD ["a b"]\n')
    assert res.returncode == 0, res.stderr
    assert "set -- 'a b'" in res.stdout
    assert "<stdin>:2: CMD without ENTRYPOINT" in res.stderr


def test_refusal_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "Dockerfile"
    src.write_text("FROM a AS build\nRUN make\nFROM b\nCOPY --from=build /x /x\n")
    out = tmp_path / "image.def"
    res = hpcbridge("recipe", str(src), "-o", str(out))
    assert res.returncode == 3
    assert res.stderr.count("\n") == 1
    assert f"{src}:3: multi-stage Dockerfile" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    res = hpcbridge("recipe", str(tmp_path / "nope"))
    assert res.returncode != 0
    assert "nope" in res.stderr and "Traceback" not in res.stderr
