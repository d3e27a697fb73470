"""What an enroot image keeps in its root filesystem, read back as an image config (pure).

enroot's documented image format (doc/image-format.md; ``docker::configure`` in
src/docker.sh): ``/etc/environment`` holds the image ``Env`` as ``KEY=VALUE``
lines, verbatim, no quoting; ``/etc/rc`` is a shell script with the labels as
``# KEY VALUE`` comment lines, ``cd "WORKDIR"`` and
``exec ENTRYPOINT "$@"`` / ``exec ENTRYPOINT CMD`` (words quoted with bash's
``@Q``: ``'...'`` or ``$'...'``).  Images imported by enroot master start
``/etc/rc`` with ``# enroot-provenance: docker://...``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CD = re.compile(r'^\s*cd\s+"(.*)"(?:\s*(?:&&|\|\|).*)?$')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "e": "\x1b", "a": "\a"}


@dataclass(frozen=True)
class EnrootImage:
    """The image config facts an enroot squashfs carries."""

    env: tuple[str, ...] = ()
    workdir: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    provenance: str = ""

    def oci_config(self) -> dict[str, Any]:
        """An OCI image config document with these facts (for the Apptainer scaffold)."""
        cfg: dict[str, Any] = {"Env": list(self.env)}
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.entrypoint:
            cfg["Entrypoint"] = list(self.entrypoint)
        cfg["Cmd"] = list(self.cmd) if self.cmd else (["/bin/sh"] if not self.entrypoint else [])
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        return {"architecture": "amd64", "os": "linux", "config": cfg}


def parse_environment(text: str) -> tuple[str, ...]:
    """``/etc/environment``: valid ``NAME=VALUE`` lines, one pair of surrounding quotes
    stripped (enroot's ``common::envfmt``); later lines win."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, value = stripped.partition("=")
        if not _NAME.match(name):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[name] = value
    return tuple(f"{k}={v}" for k, v in found.items())


def parse_rc(text: str) -> EnrootImage:
    """``/etc/rc``: labels, working directory, entrypoint and command."""
    labels: dict[str, str] = {}
    provenance = ""
    workdir = ""
    execs: list[list[str]] = []
    in_header = True
    for line in text.splitlines():
        stripped = line.strip()
        if in_header and stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("enroot-provenance:"):
                provenance = body.partition(":")[2].strip()
            elif body:
                key, _, value = body.partition(" ")
                labels[key] = value.strip()
            continue
        if stripped:
            in_header = False
        m = _CD.match(line)
        if m and not workdir:
            workdir = m.group(1)
        if stripped.startswith("exec ") or stripped == "exec":
            words = _words(stripped[4:])
            if words is not None:
                execs.append(words)
    entrypoint, cmd = _entrypoint_and_cmd(execs)
    return EnrootImage((), workdir, entrypoint, cmd, labels, provenance)


def _entrypoint_and_cmd(execs: Sequence[list[str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``exec EP "$@"`` (with arguments) and ``exec EP CMD`` (without) -> (EP, CMD)."""
    with_args = next((w for w in execs if w and w[-1] == "\x00@"), None)
    without = next((w for w in execs if "\x00@" not in w), None)
    if with_args is None:
        return (), tuple(without or ())
    entrypoint = tuple(with_args[:-1])
    if without is None or tuple(without[: len(entrypoint)]) != entrypoint:
        return entrypoint, ()
    return entrypoint, tuple(without[len(entrypoint) :])


def _words(text: str) -> Optional[list[str]]:
    """Shell words of an ``exec`` line: ``'..'``, ``$'..'``, ``".."``, ``\\x``; ``"$@"`` is
    marked ``\\0@``.  None for anything else (expansions, redirections)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text.startswith('"$@"', i):
            out.append("\x00@")
            i += 4
            continue
        word, i = _word(text, i)
        if word is None:
            return None
        out.append(word)
    return out


def _word(text: str, i: int) -> tuple[Optional[str], int]:
    buf: list[str] = []
    n = len(text)
    while i < n and text[i] not in " \t":
        ch = text[i]
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None, n
            buf.append(text[i + 1 : end])
            i = end + 1
        elif text.startswith("$'", i):
            i += 2
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    buf.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                    i += 2
                else:
                    buf.append(text[i])
                    i += 1
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0 or any(c in text[i + 1 : end] for c in "$`\\"):
                return None, n
            buf.append(text[i + 1 : end])
            i = end + 1
        elif ch == "\\" and i + 1 < n:
            buf.append(text[i + 1])
            i += 2
        elif ch in "$`;&|<>()":
            return None, n
        else:
            buf.append(ch)
            i += 1
    return "".join(buf), i
