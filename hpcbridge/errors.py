"""Typed errors raised by library code.

Library code raises these; only :mod:`hpcbridge.cli` turns them into one line on
stderr and an exit code.  Every error carries a ``message`` naming the offending
value and, where one exists, a ``hint`` naming the fix.
"""

from __future__ import annotations

import enum
from typing import Optional


class ExitCode(enum.IntEnum):
    """Process exit statuses of the ``hpcbridge`` command."""

    OK = 0
    FAILURE = 1  # the command ran, but what it reports failed (e.g. failed tasks)
    USAGE = 2  # bad command line (click's own code)
    INPUT = 3  # bad job file, site config or other user input
    IMAGE = 4  # image reference, registry, conversion or cache problem
    SCHEDULER = 5  # the scheduler refused or could not be reached
    STATE = 6  # the local submission records
    ENVIRONMENT = 7  # a missing tool or an unusable machine setup
    INTERRUPTED = 130


class HpcbridgeError(Exception):
    """Base class of every error hpcbridge raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InputError(HpcbridgeError):
    """A job file, site config, CLI value or other user input is invalid."""

    exit_code = ExitCode.INPUT


class ConfigError(InputError):
    """A configuration file or value is invalid (unknown key, wrong type...)."""


class JobSpecError(InputError):
    """A job description is invalid."""


class ImageError(HpcbridgeError):
    """An image reference, registry, layer, conversion or cache problem."""

    exit_code = ExitCode.IMAGE


class SchedulerError(HpcbridgeError):
    """The scheduler refused a request, answered something unparseable or is unreachable."""

    exit_code = ExitCode.SCHEDULER


class SchedulerUnavailable(SchedulerError):
    """The scheduler could not be reached (controller down, timeout)."""


class StateError(HpcbridgeError):
    """The local submission records are missing or unreadable."""

    exit_code = ExitCode.STATE


class EnvironmentProblem(HpcbridgeError):
    """A required tool is missing or the machine setup cannot work."""

    exit_code = ExitCode.ENVIRONMENT


class CommandError(HpcbridgeError):
    """An external command failed. Raised by :mod:`hpcbridge.runner` only."""

    exit_code = ExitCode.ENVIRONMENT

    def __init__(
        self,
        argv: tuple[str, ...],
        returncode: Optional[int],
        stderr: str,
        message: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        if message is None:
            last = _last_line(stderr)
            message = f"command {argv[0]!r} exited with status {returncode}" + (
                f": {last}" if last else ""
            )
        super().__init__(message, hint)


class CommandNotFound(CommandError):
    """The executable of a command does not exist on PATH."""


class CommandTimeout(CommandError):
    """A command ran longer than its timeout and was killed."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
