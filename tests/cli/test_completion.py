"""Shell completion (click's), exercised through a real bash, and the zsh/fish protocol."""

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


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_and_answers(shell: str) -> None:
    assert f"_HPCBRIDGE_COMPLETE={shell}_complete" in _script(shell).replace('"', "")
    # What the script asks hpcbridge, answered by hpcbridge itself:
    res = subprocess.run(
        [sys.executable, "-m", "hpcbridge"],
        capture_output=True,
        text=True,
        env=_env(
            _HPCBRIDGE_COMPLETE=f"{shell}_complete",
            COMP_WORDS="hpcbridge completion ",
            # zsh passes the word index, fish the current (here empty) token
            COMP_CWORD="2" if shell == "zsh" else "",
        ),
    )
    assert res.returncode == 0, res.stderr
    for name in ("bash", "zsh", "fish"):
        assert name in res.stdout


def test_unknown_shell_is_a_usage_error() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "hpcbridge", "completion", "tcsh"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "tcsh" in res.stderr
