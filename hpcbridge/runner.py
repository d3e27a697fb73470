"""The one module of hpcbridge that starts processes.

Commands are argv lists, never shell strings.  :func:`run` waits for a command and
returns a :class:`Completed`; :func:`spawn` starts one and hands back a
:class:`Process` for streaming.  Failures raise :class:`~hpcbridge.errors.CommandError`
(or its subclasses) carrying the argv and stderr.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, NoReturn, Optional, Union

from hpcbridge.errors import CommandError, CommandNotFound, CommandTimeout

log = logging.getLogger(__name__)

Env = Optional[Mapping[str, str]]


@dataclass(frozen=True)
class Completed:
    """The outcome of a finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _environment(env: Env, extra_env: Env) -> Optional[dict[str, str]]:
    if env is None and extra_env is None:
        return None
    merged = dict(os.environ if env is None else env)
    if extra_env:
        merged.update(extra_env)
    return merged


def _not_found(args: tuple[str, ...]) -> CommandNotFound:
    return CommandNotFound(
        args,
        None,
        "",
        message=f"command not found: {args[0]!r}",
        hint="install it or put it on PATH",
    )


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, (str, bytes)):
        raise TypeError("runner takes an argv list, not a shell string")
    args = tuple(str(a) for a in argv)
    if not args:
        raise ValueError("empty argv")
    return args


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Env = None,
    extra_env: Env = None,
    cwd: Optional[Union[str, os.PathLike[str]]] = None,
    input: Optional[str] = None,
    timeout: Optional[float] = None,
) -> Completed:
    """Run ``argv`` to completion and capture its output as text.

    ``env`` replaces the environment; ``extra_env`` is merged on top of it (or of
    ``os.environ``).  With ``check`` a non-zero exit raises :class:`CommandError`.
    """
    args = _check_argv(argv)
    log.debug("run: %s", args)
    try:
        proc = subprocess.run(
            args,
            env=_environment(env, extra_env),
            cwd=cwd,
            input=input,
            capture_output=True,
            stdin=None if input is not None else subprocess.DEVNULL,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise _not_found(args) from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise CommandTimeout(
            args,
            None,
            stderr,
            message=f"command {args[0]!r} did not finish within {timeout:g} s",
        ) from exc
    done = Completed(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr)
    return done


class Process:
    """A started command; a thin wrapper so callers never touch :mod:`subprocess`."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: tuple[str, ...]) -> None:
        self._popen = popen
        self.argv = argv

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def stdin(self) -> Optional[IO[bytes]]:
        return self._popen.stdin

    @property
    def stdout(self) -> Optional[IO[bytes]]:
        return self._popen.stdout

    @property
    def stderr(self) -> Optional[IO[bytes]]:
        return self._popen.stderr

    def poll(self) -> Optional[int]:
        return self._popen.poll()

    def wait(self, timeout: Optional[float] = None, *, check: bool = True) -> int:
        """Wait for the process; with ``check`` a non-zero status raises CommandError."""
        try:
            code = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(
                self.argv, None, "", message=f"command {self.argv[0]!r} is still running"
            ) from exc
        if check and code != 0:
            err = b""
            if self._popen.stderr is not None and not self._popen.stderr.closed:
                err = self._popen.stderr.read()
            raise CommandError(self.argv, code, err.decode(errors="replace"))
        return code

    def terminate(self) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()


def spawn(
    argv: Sequence[str],
    *,
    env: Env = None,
    extra_env: Env = None,
    cwd: Optional[Union[str, os.PathLike[str]]] = None,
    stdin_pipe: bool = False,
    stdout_pipe: bool = False,
    stderr_pipe: bool = True,
    stdout_file: Optional[IO[bytes]] = None,
) -> Process:
    """Start ``argv`` without waiting; pipes are binary."""
    args = _check_argv(argv)
    log.debug("spawn: %s", args)
    stdout: Union[int, IO[bytes]] = subprocess.DEVNULL
    if stdout_file is not None:
        stdout = stdout_file
    elif stdout_pipe:
        stdout = subprocess.PIPE
    try:
        popen = subprocess.Popen(
            args,
            env=_environment(env, extra_env),
            cwd=cwd,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE if stderr_pipe else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise _not_found(args) from exc
    return Process(popen, args)


def which(name: str, path: Optional[str] = None) -> Optional[str]:
    """Full path of an executable on ``path`` (default ``$PATH``), or None."""
    return shutil.which(name, path=path)


def replace_process(argv: Sequence[str], *, extra_env: Env = None) -> NoReturn:
    """Become ``argv`` (``execvpe``): for interactive commands that need this terminal
    (``hpcbridge srun --pty``).  Never returns; a missing program raises CommandNotFound."""
    args = _check_argv(argv)
    log.debug("exec: %s", args)
    env = _environment(None, extra_env) or dict(os.environ)
    try:
        os.execvpe(args[0], list(args), env)
    except FileNotFoundError as exc:
        raise _not_found(args) from exc
