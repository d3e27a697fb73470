"""The result of a recipe translation: text plus the notes about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """One deviation or fix, tied to a line of the input."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Translation:
    text: str
    notes: tuple[Note, ...]
