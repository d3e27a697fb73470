"""Placeholders (``{task}``, ``{task:04d}``, ``{input}``, ``{rank}``...) as shell words.

A job's command, binds, overlays, env values and working directory may contain
Python format fields (parsed by :func:`hpcbridge.job.values.parse_template`).  The
script resolves per-task ones in pure bash: ``{task}`` is ``$hpcb_task`` (the
global index), a formatted ``{task:04d}`` is computed once with ``printf -v``,
``{input}``, ``{input_name}`` and ``{input_stem}`` are looked up in arrays
embedded in the script (computed by :func:`hpcbridge.job.values.input_fields`,
the rules :func:`hpcbridge.job.values.expand` uses too).

Per-rank placeholders (``{rank}``, ``{local_rank}``, ``{node}``) and ``$VAR`` in
host paths are known only to each rank on its node: they become *marks*, shell
variables holding ``\x1fKEY\x1f``, which the per-rank launcher replaces by the
rank's own value (:mod:`hpcbridge.render.runtime`).  Job values cannot contain
U+001F, so a mark is never confused with user text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import RANK_FIELDS, EnvRef, Field, parse_template
from hpcbridge.render.words import Arg, Var, Word

TASK_VAR = "hpcb_task"
#: The shell variable holding the mark of a run-time key (``rank``, ``env:TMPDIR``).
MARK_VARS = {name: f"hpcb_at_{name}" for name in RANK_FIELDS}
INPUT_VARS = {
    "input": "hpcb_input",
    "input_name": "hpcb_input_name",
    "input_stem": "hpcb_input_stem",
}

_INT_SPEC = re.compile(
    r"(?:(?P<fill>[ ])?(?P<align>[<>]))?(?P<sign>[+ -])?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>[1-9]\d{0,2})?(?P<type>[dxXo])?\Z"
)


def printf_format(spec: str, what: str) -> str:
    """Translate a Python int format spec into a printf format with the same output.

    Supported: width, ``0`` padding, ``<``/``>`` alignment, sign, types
    d/x/X/o.  Anything else is refused (naming the spec) rather than approximated.
    """
    m = _INT_SPEC.match(spec)
    bad = JobSpecError(
        f"{what}: format {{task:{spec}}} has no exact shell equivalent",
        "use a width, 0-padding, +, <, > and d/x/X/o, e.g. {task:04d}",
    )
    if not m:
        raise bad
    align, zero, alt, typ = m.group("align"), m.group("zero"), m.group("alt"), m.group("type")
    if zero and align == "<":
        raise bad  # Python pads with zeros on the right; printf cannot
    if alt:
        raise bad  # Python writes 0o17 and 0x0, printf 017 and 0
    flags = ("-" if align == "<" else "") + (m.group("sign") or "") + (alt or "") + (zero or "")
    return "%" + flags + (m.group("width") or "") + (typ or "d")


@dataclass
class TaskVars:
    """Collects the placeholders used by a job and the shell variables they need."""

    formats: dict[str, str] = field(default_factory=dict)  # var -> printf format of hpcb_task
    inputs: set[str] = field(default_factory=set)  # input fields used
    marks: dict[str, str] = field(default_factory=dict)  # run-time key -> its mark variable

    def word(self, text: str, what: str, *, env_refs: bool = False) -> Arg:
        """``text`` with its placeholders as a :class:`Word` (a plain ``str`` if none);
        with ``env_refs``, ``$VAR`` becomes a run-time mark."""
        parts = parse_template(text, what, env_refs=env_refs)
        if all(isinstance(p, str) for p in parts):
            return "".join(p for p in parts if isinstance(p, str))
        out: list[str | Var] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, EnvRef):
                out.append(self._mark(f"env:{part.name}", f"hpcb_env_{part.name}"))
            else:
                out.append(self._var(part, what))
        return Word.of(*out)

    def words(self, texts: Iterable[str], what: str) -> list[Arg]:
        return [self.word(t, f"{what}[{i}]") for i, t in enumerate(texts)]

    def _mark(self, key: str, var: str) -> Var:
        self.marks.setdefault(key, var)
        return Var(var)

    def _var(self, f: Field, what: str) -> Var:
        if f.name in MARK_VARS:
            return self._mark(f.name, MARK_VARS[f.name])
        if f.name == "task":
            if not f.spec or f.spec == "d":
                return Var(TASK_VAR)
            fmt = printf_format(f.spec, what)
            name = f"hpcb_task_{len(self.formats) + 1}"
            for existing, efmt in self.formats.items():
                if efmt == fmt:
                    return Var(existing)
            self.formats[name] = fmt
            return Var(name)
        if f.spec:
            raise JobSpecError(
                f"{what}: format {{{f.name}:{f.spec}}} is not supported",
                f"write {{{f.name}}}; only {{task}} takes a format",
            )
        self.inputs.add(f.name)
        return Var(INPUT_VARS[f.name])
