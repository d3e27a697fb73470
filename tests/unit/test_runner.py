"""The process runner: argv lists only, typed errors carrying argv and stderr."""

from __future__ import annotations

import sys

import pytest

from hpcbridge import runner
from hpcbridge.errors import CommandError, CommandNotFound, CommandTimeout


def test_run_captures_output_and_status() -> None:
    done = runner.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    )
    assert done.ok
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"


def test_run_nonzero_raises_with_argv_and_stderr() -> None:
    with pytest.raises(CommandError) as info:
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    assert info.value.returncode == 3
    assert info.value.stderr == "boom\n"
    assert info.value.argv[0] == sys.executable
    assert "boom" in str(info.value)


def test_run_unchecked_returns_status() -> None:
    done = runner.run([sys.executable, "-c", "raise SystemExit(4)"], check=False)
    assert done.returncode == 4
    assert not done.ok


def test_run_refuses_shell_strings() -> None:
    with pytest.raises(TypeError):
        runner.run("echo hi")  # type: ignore[arg-type]


def test_missing_command_is_typed() -> None:
    with pytest.raises(CommandNotFound) as info:
        runner.run(["hpcbridge-no-such-command-xyz"])
    assert "hpcbridge-no-such-command-xyz" in info.value.message


def test_timeout_is_typed() -> None:
    with pytest.raises(CommandTimeout):
        runner.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)


def test_arguments_reach_the_process_byte_exact() -> None:
    weird = ["a b", "$HOME", "`x`", "'q'", '"d"', "new\nline", "ünï"]
    done = runner.run(
        [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *weird]
    )
    import json

    assert json.loads(done.stdout) == weird


def test_extra_env_is_merged() -> None:
    done = runner.run(
        [sys.executable, "-c", "import os; print(os.environ['HPCB_X'], 'PATH' in os.environ)"],
        extra_env={"HPCB_X": "1"},
    )
    assert done.stdout.split() == ["1", "True"]


def test_spawn_streams_and_checks() -> None:
    proc = runner.spawn([sys.executable, "-c", "print('hi')"], stdout_pipe=True)
    assert proc.stdout is not None
    assert proc.stdout.read() == b"hi\n"
    assert proc.wait() == 0
    bad = runner.spawn([sys.executable, "-c", "raise SystemExit(2)"])
    with pytest.raises(CommandError):
        bad.wait()
