"""Reading an Apptainer/Singularity definition file into header and sections (pure).

spython's SingularityParser lower-cases the whole ``From:`` line (tags are case
sensitive), takes any line containing ``bootstrap`` or ``from:`` -- also inside
``%post`` -- for a header, and strips every line's indentation (breaking
here-documents); this reader follows Apptainer's own rules instead: header
``Key: value`` lines before the first section, a section starts at a line whose
first character is ``%`` followed by a known section name, and section bodies
are kept verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hpcbridge.errors import InputError

SECTIONS = frozenset(
    {
        "setup",
        "files",
        "environment",
        "post",
        "runscript",
        "startscript",
        "test",
        "labels",
        "help",
        "arguments",
    }
)
APP_SECTIONS = frozenset(
    {"appinstall", "apphelp", "apprun", "appenv", "appfiles", "applabels", "apptest", "appstart"}
)
_SECTION_RE = re.compile(r"%([A-Za-z]+)(?:[ \t]+(.*))?\s*\Z")
_HEADER_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*?)\s*\Z")


@dataclass(frozen=True)
class Section:
    name: str
    args: str  # e.g. "-c /bin/bash" or "from stage"
    lines: tuple[str, ...]
    lineno: int  # line of the %header


@dataclass(frozen=True)
class DefFile:
    header: dict[str, str]  # keys lower-cased
    header_lines: dict[str, int]
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def section(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]


def parse_def(text: str, name: str = "image.def") -> DefFile:
    lines = text.replace("\r\n", "\n").split("\n")
    header: dict[str, str] = {}
    header_lines: dict[str, int] = {}
    sections: list[Section] = []
    current: tuple[str, str, int] | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            while body and not body[-1].strip():
                body.pop()
            sections.append(Section(current[0], current[1], tuple(body), current[2]))

    for i, line in enumerate(lines, start=1):
        m = _SECTION_RE.match(line) if line.startswith("%") else None
        if m and (m.group(1).lower() in SECTIONS or m.group(1).lower() in APP_SECTIONS):
            close()
            current = (m.group(1).lower(), (m.group(2) or "").strip(), i)
            body = []
            continue
        if current is not None and re.match(r"bootstrap\s*:", line, re.I):
            raise InputError(
                f"{name}:{i}: second Bootstrap: header (multi-stage definition)",
                "multi-stage definition files are not translated; build the image and convert it",
            )
        if current is not None:
            body.append(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        hm = _HEADER_RE.match(stripped)
        if hm is None:
            raise InputError(
                f"{name}:{i}: cannot read header line {stripped!r}",
                "header lines are `Key: value` (Bootstrap:, From:) before the first %section",
            )
        key = hm.group(1).lower()
        if key in header:
            raise InputError(
                f"{name}:{i}: second {hm.group(1)}: header (multi-stage definition)",
                "multi-stage definition files are not translated; build the image and convert it",
            )
        header[key] = hm.group(2)
        header_lines[key] = i
    close()
    return DefFile(header, header_lines, tuple(sections))
