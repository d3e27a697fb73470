"""Values only a task knows on its node: per-rank placeholders, ``$VAR``, run-time checks.

The batch script cannot expand ``{rank}`` (every rank ``srun`` starts has its own)
nor ``$TMPDIR`` or ``/local/$SLURM_JOB_ID`` (they are the node's).  Such a value
reaches the per-rank launcher (:mod:`hpcbridge.render.launcher`) holding *marks*:
``\\x1frank\\x1f``, ``\\x1fenv:TMPDIR\\x1f``, set by the script in variables
(``hpcb_at_rank``, ``hpcb_env_TMPDIR``) and printed as ``"${hpcb_at_rank}"`` inside
otherwise single-quoted words.  The launcher, in every rank, on its node:

1. fails the task with one clear line (and its reason in ``$HPCB_REASON_FILE``,
   which the script writes into the task's end file) when a variable it needs is
   not set;
2. replaces each mark in its argv and in the ``APPTAINERENV_*`` values by the
   rank's value (bash ``${x//pattern/value}`` with quoted pattern and value: no
   evaluation, no word splitting);
3. checks run-time paths, given to it as ``KIND LABEL PATH`` triplets before
   ``--``: ``exists`` (a bind source, overlay or workdir that must be there) or
   ``mkdir`` (a writable per-rank bind source it creates), failing the same way;
4. ``exec``s the runtime.

Pure: builds bash text from validated names only (shell variable names and the
fixed keys of :data:`RANK_VALUES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from hpcbridge.render.words import Arg

#: What a per-rank placeholder is in the launcher: srun's variables, else (mpirun)
#: Open MPI's and MPICH's.
RANK_VALUES = {
    "rank": "${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-0}}}",
    "local_rank": "${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-${SLURM_LOCALID:-0}}}",
    "node": "${SLURMD_NODENAME:-$HOSTNAME}",
}
#: Exit status of a task whose run-time check failed (EX_NOINPUT).
CHECK_FAILED = 66
#: The variable naming the file a failing rank writes its reason to.
REASON_FILE_VAR = "HPCB_REASON_FILE"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Check(NamedTuple):
    """A run-time path the launcher checks: ``exists`` or ``mkdir``."""

    kind: str
    label: str  # e.g. "binds[0].src ($TMPDIR/stage)"
    path: Arg


class RunTime(NamedTuple):
    """What the launcher must do per rank (empty: nothing, the plain launcher)."""

    marks: tuple[tuple[str, str], ...]  # (key, variable): ("rank", "hpcb_at_rank")
    checks: tuple[Check, ...]

    @property
    def needed(self) -> bool:
        return bool(self.marks or self.checks)

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(k[4:] for k, _ in self.marks if k.startswith("env:"))


def run_time(marks: Mapping[str, str], checks: Iterable[Check]) -> RunTime:
    return RunTime(tuple(sorted(marks.items())), tuple(checks))


def check_args(rt: RunTime) -> list[Arg]:
    """The launcher's leading arguments: ``KIND LABEL PATH`` per check, then ``--``."""
    if not rt.checks:
        return []
    out: list[Arg] = []
    for check in rt.checks:
        out += [check.kind, check.label, check.path]
    return [*out, "--"]


def launcher_lines(rt: RunTime, env_prefix: str) -> list[str]:
    """The launcher's bash statements for ``rt``, ending with its ``exec``."""
    if not rt.needed:
        return ['exec "$@"']
    for name in rt.env_names:
        if not _NAME.match(name):
            raise ValueError(f"not a variable name: {name!r}")
    where = "task ${HPCBRIDGE_TASK:-0} rank ${SLURM_PROCID:-0} on ${SLURMD_NODENAME:-$HOSTNAME}"
    lines = [
        "printf -v hpcb_s '\\037'",
        "hpcb_die() { local m=${1//[$'\\n\\r']/ }; "
        f'printf \'hpcbridge: %s\\n\' "$m" >&2; [ -z "${{{REASON_FILE_VAR}:-}}" ] || '
        f'printf \'%s\\n\' "$m" >>"${REASON_FILE_VAR}"; exit {CHECK_FAILED}; }}',
    ]
    if rt.env_names:
        lines.append(
            f'for n in {" ".join(rt.env_names)}; do [ -n "${{!n+x}}" ] || '
            f'hpcb_die "{where}: \\$$n is not set there"; done'
        )
    subs = []
    for key, _ in rt.marks:
        value = RANK_VALUES[key] if key in RANK_VALUES else "${" + key[4:] + "}"
        subs.append(f'hpcb_r=${{hpcb_r//"${{hpcb_s}}{key}${{hpcb_s}}"/"{value}"}}')
    lines.append(
        "hpcb_sub() { hpcb_r=$1; " + "; ".join(subs) + "; }"
        if subs
        else "hpcb_sub() { hpcb_r=$1; }"
    )
    if rt.checks:
        lines.append(
            'while [ "$1" != -- ]; do hpcb_sub "$3"; [[ $hpcb_r != *[,:]* ]] || '
            f'hpcb_die "{where}: $2: $hpcb_r contains , or : (Apptainer cannot bind it)"; case $1 in '
            f'mkdir) mkdir -p -- "$hpcb_r" 2>/dev/null || hpcb_die "{where}: $2: cannot create $hpcb_r";; '
            f'*) [ -e "$hpcb_r" ] || hpcb_die "{where}: $2: $hpcb_r does not exist";; '
            "esac; shift 3; done; shift"
        )
    lines.append('hpcb_a=(); for hpcb_x in "$@"; do hpcb_sub "$hpcb_x"; hpcb_a+=("$hpcb_r"); done')
    lines.append(
        f"for n in ${{!{env_prefix}@}}; do [[ ${{!n}} != *$hpcb_s* ]] || "
        '{ hpcb_sub "${!n}"; export "$n=$hpcb_r"; }; done'
    )
    lines.append('exec "${hpcb_a[@]}"')
    return lines
