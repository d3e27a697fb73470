"""Find a batch script's ``srun`` steps and what their options will be (pure).

At submit time hpcbridge must know which images the steps run, to convert
them once on the login node.  The options are often built at run time (bash
arrays, strings, ``$VAR``), so the script's variables are followed: each
assignment (``NAME=..``, ``export``/``declare``/``local``/``readonly``,
``NAME=(..)``, ``NAME+=..``, ``for NAME in ..``) adds candidate values, the
submitting environment and the script's arguments give the others, and every
``srun`` command is expanded with them (word splitting and arrays as bash does
it, a bounded number of combinations).  ``eval``, ``bash -c``/``sh -c`` strings
are scanned too.  What cannot be known before the job runs (``$(..)``,
``SLURM_JOB_ID``...) stays marked as unknown: such a value is resolved by the
run-time shim instead, and hpcbridge says so.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hpcbridge.pyxis.shell import Command, Lit, Param, Seg, Unknown, Word, assignment, commands

#: marks an unknown part inside an expanded word
UNKNOWN = "\x00"
_MAX_ALTERNATIVES = 32
_MAX_CANDIDATES = 8
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}",
             "exec", "nohup", "command", "builtin", "stdbuf"}  # fmt: skip
_DECLARERS = {"export", "declare", "local", "readonly", "typeset"}
_SHELLS = {"bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/env"}
#: variables a job has at run time that the submitting shell does not know
_RUN_TIME = ("SLURM_JOB", "SLURM_STEP", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODE",
             "SLURM_TASK", "SLURM_CPUS", "SLURM_GPUS", "SLURM_NTASKS", "SLURM_NNODES",
             "SLURM_ARRAY", "SLURMD_", "CUDA_VISIBLE_DEVICES", "TMPDIR", "HOSTNAME")  # fmt: skip

Value = tuple[str, ...]  # a scalar is a 1-tuple; an array its elements


@dataclass(frozen=True)
class Step:
    """One possible expansion of an ``srun`` command."""

    line: int
    argv: tuple[str, ...]  # srun's arguments; words with UNKNOWN parts were not resolvable
    cwd: str  # the directory the script is in then (after its ``cd``s)
    env: tuple[tuple[str, str], ...] = ()  # NAME=VALUE words before ``srun`` on its line

    @property
    def exact(self) -> bool:
        return not any(UNKNOWN in w for w in self.argv)


@dataclass
class Scan:
    steps: list[Step] = field(default_factory=list)
    srun_lines: list[int] = field(default_factory=list)  # lines running srun at all
    variables: dict[str, list[Value]] = field(default_factory=dict)

    def values(self, name: str) -> list[str]:
        """Known scalar values a variable of the script may take."""
        return [v[0] for v in self.variables.get(name, []) if v and UNKNOWN not in v[0]]


class _Scanner:
    def __init__(self, environ: Mapping[str, str], cwd: str, args: Sequence[str]) -> None:
        self.vars: dict[str, list[Value]] = {}
        self.env = environ
        self.cwd = cwd
        self.args = tuple(args)
        self.result = Scan(variables=self.vars)

    # -- variables -----------------------------------------------------------------------

    def lookup(self, p: Param) -> list[Value]:
        if p.name.isdigit():
            n = int(p.name)
            return [(self.args[n - 1],)] if 0 < n <= len(self.args) else []
        if p.name in ("@", "*"):
            return [self.args]
        if p.name == "#":
            return [(str(len(self.args)),)]
        if p.name in self.vars:
            return self.vars[p.name]
        if p.name in ("PWD", "SLURM_SUBMIT_DIR"):
            return [(self.cwd,)]
        if p.name.startswith(_RUN_TIME) or p.name in "?$!-":
            return [(UNKNOWN,)]
        if p.name in self.env:
            return [(self.env[p.name],)]
        return []

    def assign(self, name: str, append: bool, values: list[Value]) -> None:
        """A new candidate value (``NAME=``: every assignment is one; ``NAME+=`` extends
        the current candidates instead)."""
        if append:
            old = self.vars.get(name) or self.lookup(Param(name)) or [()]
            values = [
                o + v if len(o) != 1 or len(v) != 1 else (o[0] + v[0],) for o in old for v in values
            ]
            self.vars[name] = []
        seen = self.vars.setdefault(name, [])
        for v in values:
            if v not in seen:
                seen.append(v)
        del seen[:-_MAX_CANDIDATES]

    # -- expansion ---------------------------------------------------------------------

    def param_values(self, p: Param) -> list[Value]:
        found = self.lookup(p)
        empty = not found or all(v in ((), ("",)) for v in found)
        if p.op in (":-", ":=", "-", "="):
            if (p.op in (":-", ":=") and empty) or (not found):
                default: list[Value] = [tuple(f) for f in self.fields(p.arg, True)]
                if p.op in (":=", "="):  # ${NAME:=default} also assigns (: "${X:=y}")
                    self.assign(p.name, False, default)
                return default
        elif p.op in (":+", "+"):
            return [tuple(f) for f in self.fields(p.arg, True)] if found and not empty else [("",)]
        if not found:
            return [(UNKNOWN,)]
        if p.index in ("@", "*"):
            return found
        k = int(p.index) if p.index and p.index.isdigit() else 0
        return [(v[k] if k < len(v) else "",) for v in found]

    def fields(self, word: Word, quoted_all: bool = False) -> list[list[str]]:
        """Alternative field lists of one word (at most _MAX_ALTERNATIVES)."""
        alts: list[tuple[list[str], bool]] = [([], False)]
        for seg in word:
            choices = self.seg_choices(seg)
            quoted = quoted_all or seg.quoted
            nxt = []
            for (fields, open_), choice in itertools.product(alts, choices):
                nxt.append(_add(list(fields), open_, choice, quoted, isinstance(seg, Param)))
                if len(nxt) >= _MAX_ALTERNATIVES:
                    break
            alts = nxt
        return [f for f, _ in alts]

    def seg_choices(self, seg: Seg) -> list[Value]:
        if isinstance(seg, Lit):
            return [(seg.text,)]
        if isinstance(seg, Unknown):
            return [(UNKNOWN,)]
        return self.param_values(seg) or [("",)]

    def command_fields(self, words: Sequence[Word]) -> list[list[str]]:
        alts: list[list[str]] = [[]]
        for word in words:
            alts = [a + f for a, f in itertools.product(alts, self.fields(word))][
                :_MAX_ALTERNATIVES
            ]
        return alts

    # -- commands ----------------------------------------------------------------------

    def scan(self, text: str, depth: int = 0) -> None:
        for cmd in commands(text):
            self.command(cmd, depth)

    def command(self, cmd: Command, depth: int) -> None:
        words = list(cmd.words)
        prefix: list[tuple[str, str]] = []
        i = 0
        while i < len(words):
            if i in cmd.arrays:
                name, append, elements = cmd.arrays[i]
                self.assign(name, append, [tuple(a) for a in self.command_fields(elements)])
                i += 1
                continue
            assigned = assignment(words[i])
            if assigned:
                name, append, value = assigned
                vals: list[Value] = [("".join(f),) for f in self.fields(value, True)]
                self.assign(name, append, vals)
                prefix += [(name, v[0]) for v in vals[:1]]
                i += 1
                continue
            head = _plain(words[i])
            if head in _KEYWORDS:
                i += 1
                continue
            break
        rest = words[i:]
        head = _plain(rest[0]) if rest else ""
        if head in _DECLARERS:
            self.declare(cmd, rest, i)
            return
        if head == "for" and len(rest) >= 3 and _plain(rest[2]) == "in":
            loop = self.command_fields(rest[3:])
            self.assign(_plain(rest[1]), False, [(f,) for alt in loop for f in alt])
            return
        if not rest:
            return
        for alt in self.command_fields(rest):
            self.run(cmd.line, alt, prefix, depth)

    def declare(self, cmd: Command, rest: list[Word], offset: int) -> None:
        for k, word in enumerate(rest[1:], start=offset + 1):
            if k in cmd.arrays:
                name, append, elements = cmd.arrays[k]
                self.assign(name, append, [tuple(a) for a in self.command_fields(elements)])
            elif assigned := assignment(word):
                name, append, value = assigned
                self.assign(name, append, [("".join(f),) for f in self.fields(value, True)])

    def run(self, line: int, fields: list[str], prefix: list[tuple[str, str]], depth: int) -> None:
        while fields and fields[0] in ("env", "timeout", "nice"):
            fields = _drop_wrapper(fields)
        if not fields:
            return
        if fields[0] == "srun" or fields[0].endswith("/srun"):
            self.result.srun_lines.append(line)
            self.result.steps.append(Step(line, tuple(fields[1:]), self.cwd, tuple(prefix)))
        elif fields[0] == "cd" and len(fields) == 2 and UNKNOWN not in fields[1]:
            target = fields[1]
            if target.startswith("~"):
                target = self.env.get("HOME", "/") + target[1:]
            self.cwd = posixpath.normpath(posixpath.join(self.cwd, target))
        elif depth < 2 and fields[0] == "eval":
            self.scan(" ".join(fields[1:]), depth + 1)
        elif depth < 2 and fields[0] in _SHELLS and "-c" in fields[1:-1]:
            self.scan(fields[fields.index("-c") + 1], depth + 1)


def _add(
    fields: list[str], open_: bool, value: Value, quoted: bool, split: bool
) -> tuple[list[str], bool]:
    """Append one expansion to the fields being built (bash's word splitting, roughly)."""
    for n, element in enumerate(value):
        if n:
            open_ = False  # "${A[@]}": each element its own field
        if quoted or not split:
            if not open_:
                fields.append("")
            fields[-1] += element
            open_ = True
            continue
        if element[:1].isspace():
            open_ = False
        for k, part in enumerate(element.split()):
            if k or not open_:
                fields.append("")
            fields[-1] += part
            open_ = True
        if element[-1:].isspace():
            open_ = False
    return fields, open_


def _plain(word: Word) -> str:
    return (
        "".join(s.text for s in word if isinstance(s, Lit))
        if all(isinstance(s, Lit) for s in word)
        else ""
    )


def _drop_wrapper(fields: list[str]) -> list[str]:
    """``env [-i] [NAME=V]... cmd``, ``timeout [opts] DURATION cmd``, ``nice [-n N] cmd``."""
    head, rest = fields[0], fields[1:]
    while rest and (rest[0].startswith("-") or (head == "env" and "=" in rest[0])):
        rest = rest[2:] if rest[0] in ("-n", "-s", "-k", "--signal", "--kill-after") else rest[1:]
    if head == "timeout" and rest:
        rest = rest[1:]
    return rest


def scan_script(
    text: str, *, environ: Mapping[str, str], cwd: str, args: Sequence[str] = ()
) -> Scan:
    """The ``srun`` steps of ``text`` and the script's variables (see the module docstring)."""
    scanner = _Scanner(environ, cwd, args)
    scanner.scan(text)
    return scanner.result
