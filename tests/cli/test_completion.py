"""Shell completion (click's), exercised through real bash, zsh and fish."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", **extra}


def _script(shell: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "hpcbridge", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["hpcbridge", "rec"], ["recipe"]),
        (["hpcbridge", "completion", ""], ["bash", "zsh", "fish"]),
        (["hpcbridge", "recipe", "--to", ""], ["def", "docker"]),
        (["hpcbridge", "doctor", "--j"], ["--json"]),
    ],
)
def test_bash_completes_commands_options_and_choices(words: list[str], expected: list[str]) -> None:
    if not (BIN / "hpcbridge").exists():
        pytest.skip("the hpcbridge console script is not installed next to this Python")
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        'eval "$(hpcbridge completion bash)"\n'
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_hpcbridge_completion hpcbridge\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == expected


def test_bash_script_registers_the_function() -> None:
    text = _script("bash")
    assert "complete -o nosort -F _hpcbridge_completion hpcbridge" in text
    assert "_HPCBRIDGE_COMPLETE=bash_complete" in text


ZSH_PROGRAM = """
autoload -U compinit; compinit -u
source <(hpcbridge completion zsh)
# Stand-ins for zsh's completion widgets: print what would be offered.
_describe() { print -l -- ${(P)3} }
compadd() { print -l -- ${(P)${@[-1]}} }
words=(%s); CURRENT=%d
_hpcbridge_completion
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["hpcbridge", "rec"], ["recipe"]),
        (["hpcbridge", "completion", ""], ["bash", "zsh", "fish"]),
        (["hpcbridge", "recipe", "--to", ""], ["def", "docker"]),
    ],
)
def test_zsh_completes_through_the_real_shell(words: list[str], expected: list[str]) -> None:
    if not (BIN / "hpcbridge").exists():
        pytest.skip("the hpcbridge console script is not installed next to this Python")
    quoted = " ".join(f"'{w}'" for w in words)
    res = subprocess.run(
        ["zsh", "-f", "-c", ZSH_PROGRAM % (quoted, len(words))],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert res.returncode == 0, res.stderr
    assert [line.split(":", 1)[0] for line in res.stdout.splitlines()] == expected


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hpcbridge rec", ["recipe"]),
        ("hpcbridge completion ", ["bash", "fish", "zsh"]),
        ("hpcbridge doctor --j", ["--json"]),
    ],
)
def test_fish_completes_through_the_real_shell(line: str, expected: list[str]) -> None:
    if not (BIN / "hpcbridge").exists():
        pytest.skip("the hpcbridge console script is not installed next to this Python")
    program = f"hpcbridge completion fish | source; complete -C '{line}'"
    res = subprocess.run(
        ["fish", "--no-config", "-c", program], capture_output=True, text=True, env=_env()
    )
    assert res.returncode == 0, res.stderr
    got = sorted(row.split("\t", 1)[0] for row in res.stdout.splitlines() if row)
    assert got == sorted(expected)
