"""The state of one Dockerfile -> definition file translation (shared by its handlers)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Optional

from hpcbridge.errors import InputError
from hpcbridge.recipe.dockerfile import Instruction
from hpcbridge.recipe.notes import Note

DEFAULT_SHELL = ("/bin/sh", "-c")
VERBATIM = "\0"  # marks a %post line written without indentation (inside a quote or here-doc)


@dataclass
class State:
    name: str
    notes: list[Note] = field(default_factory=list)
    base: Optional[str] = None
    global_args: dict[str, str] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    post: list[str] = field(default_factory=list)
    shell: tuple[str, ...] = DEFAULT_SHELL
    entrypoint: Optional[tuple[str, ...]] = None
    cmd: Optional[tuple[str, ...]] = None
    cmd_line: int = 0
    entrypoint_line: int = 0
    workdir: str = "/"
    workdir_line: int = 0
    # directories the image has by the time %post runs: %files cannot see them yet
    # (WORKDIR's mkdir is in %post), so a COPY into one must end in '/' (see files.py)
    dirs: set[str] = field(default_factory=lambda: {"/"})
    noted_dirs: set[str] = field(default_factory=set)
    seen_run: bool = False
    noted_order: bool = False
    used_staging: bool = False

    def add_dir(self, path: str) -> None:
        """``path`` and its parents are directories from here on."""
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def note(self, ins: Instruction, message: str) -> None:
        self.notes.append(Note(self.name, ins.lineno, message))

    def fail(self, ins: Instruction, message: str, hint: str) -> InputError:
        return InputError(f"{self.name}:{ins.lineno}: {message}", hint)
