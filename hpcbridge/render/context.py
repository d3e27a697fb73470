"""The template contract: what a Jinja template sees, typed and frozen.

:func:`hpcbridge.render.job.render_job` builds a :class:`JobContext` for
``job.sh.j2``, :func:`hpcbridge.pyxis.script.render_pyxis` a :class:`PyxisContext`
for ``pyxis.sh.j2``.  Every attribute is a top-level template variable of that
template, of the partials it includes and of ``site-hook.sh.j2`` (the empty hook
site admins override).  docs/site-admin.md lists every attribute with its type
and an example; a unit test keeps the two in step.

How a template prints each kind of value (the shipped templates do exactly this):

* ``Arg`` values and argv tuples (``str`` or :class:`~hpcbridge.render.words.Word`):
  through the ``shquote`` filter, one shell word each.
* Text on ``#`` comment lines (paths, image names, notes): through the
  ``comment`` filter, which keeps the value on its line.
* Shell variable names and integers: as they are; the constructors below refuse
  anything else, so they need no quoting.
* Raw lines (``sbatch`` directives, already quoted for sbatch's own parser; the
  job file's ``pre``/``post`` shell lines; a pyxis script's own ``#SBATCH``
  lines): as written, on purpose.  The constructors refuse a line break in them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import NamedTuple, Optional, Union

from hpcbridge.render.words import Arg
from hpcbridge.slurm_syntax import SIGNAL_NUMBERS

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Signal(NamedTuple):
    """A signal the script traps: it records ``signal:NAME`` and forwards it."""

    name: str  # TERM
    number: int  # 15


#: The signals every script traps (numbers from :data:`~hpcbridge.slurm_syntax.SIGNAL_NUMBERS`).
TRAPPED_SIGNALS = tuple(
    Signal(n, SIGNAL_NUMBERS[n]) for n in ("TERM", "INT", "USR1", "USR2", "XCPU")
)


class TaskFormat(NamedTuple):
    """A formatted task index (``{task:04d}``): ``printf -v VAR FORMAT "$hpcb_task"``."""

    var: str  # hpcb_task_1
    printf: str  # %04d


class InputEntry(NamedTuple):
    task: int  # global task index
    value: str  # that task's {input}, {input_name} or {input_stem}


class InputArray(NamedTuple):
    """A bash array holding one input field per task, and the variable it sets."""

    field: str  # input | input_name | input_stem
    var: str  # hpcb_input: the task's value
    array: str  # hpcb_inputs: the array, indexed by task
    entries: tuple[InputEntry, ...]


class TaskExport(NamedTuple):
    """A per-task variable exported to the launcher: ``export NAME="$VAR"``."""

    name: str  # HPCBRIDGE_TASK
    var: str  # hpcb_task


class ContainerEnv(NamedTuple):
    """A variable set in the container: ``export NAME=VALUE``, after an optional note."""

    note: str  # "" or one comment line
    name: str  # APPTAINERENV_OMP_NUM_THREADS
    value: Arg


class RuntimeMark(NamedTuple):
    """A run-time value's mark: ``printf -v VAR '\\037%s\\037' KEY`` (see render/runtime.py)."""

    var: str  # hpcb_at_rank, hpcb_env_TMPDIR
    key: str  # rank, local_rank, node, env:TMPDIR


class RuntimeEnv(NamedTuple):
    """A variable for the runtime process itself: ``export NAME=VALUE``."""

    name: str  # APPTAINER_CONTAINLIBS
    value: str


class EnvCommand(NamedTuple):
    """A container variable computed on the node: ``NAME`` = the output of ``command``."""

    name: str  # APPTAINERENV_MASTER_ADDR: what is exported
    label: str  # MASTER_ADDR: the job file's name for it
    command: str  # shell text, passed to bash -c as one quoted argument


@dataclass(frozen=True)
class JobContext:
    """What ``job.sh.j2`` (and the partials it includes) sees."""

    sbatch: tuple[str, ...]  # "--option=value" directive lines, quoted for sbatch
    source: Optional[str]  # the job file
    image_ref: str
    image_digest: str
    image_sha256: str  # of the SIF file
    submission_id: Optional[str]  # None for render / submit --dry-run
    notes: tuple[str, ...]  # "# Note: ..." lines of the header
    task_offset: int  # global task index = SLURM_ARRAY_TASK_ID + task_offset
    outcomes_dir: Optional[str]  # None: no outcome recording
    signals: tuple[Signal, ...]
    task_formats: tuple[TaskFormat, ...]
    input_arrays: tuple[InputArray, ...]
    task_exports: tuple[TaskExport, ...]
    modules: tuple[str, ...]  # runtime.modules, then the job's
    container_env: tuple[ContainerEnv, ...]
    pre: tuple[str, ...]  # host shell lines before the container runs
    post: tuple[str, ...]  # host shell lines after it
    mkdirs: tuple[Arg, ...]  # per-task bind sources created first
    launcher: tuple[Arg, ...]  # the per-task launcher argv
    container: tuple[tuple[Arg, ...], ...]  # the runtime argv, one group per display line
    launch_prefix: tuple[Arg, ...]  # srun/mpirun argv before the launcher (MPI jobs)
    runtime_marks: tuple[RuntimeMark, ...] = ()  # per-rank placeholders, $VAR in host paths
    runtime_env: tuple[RuntimeEnv, ...] = ()  # [apptainer_env]: APPTAINER_* for the runtime
    env_commands: tuple[EnvCommand, ...] = ()  # [env_command]: computed on the node
    run_time_checks: bool = False  # a task may fail a run-time check: record its reason

    def __post_init__(self) -> None:
        _check_lines("sbatch", self.sbatch)
        _check_lines("pre", self.pre)
        _check_lines("post", self.post)
        _check_names(_shell_names(self.signals, self.task_formats, self.input_arrays))
        _check_names(e.name for e in self.task_exports)
        _check_names(e.var for e in self.task_exports)
        _check_names(e.name for e in self.container_env)
        _check_names(m.var for m in self.runtime_marks)
        _check_names(e.name for e in self.runtime_env)
        _check_names(e.name for e in self.env_commands)
        _check_lines("runtime_marks", (m.key for m in self.runtime_marks))


class PyxisImage(NamedTuple):
    """An image a pyxis-style job runs, as converted (or previewed) at submit time."""

    value: str  # as the script or command line gives it: nvcr.io#nvidia/pytorch:24.01-py3
    ref: str  # what hpcbridge converted: docker://nvcr.io/nvidia/pytorch:24.01-py3
    digest: str  # "" when a dry run could not resolve it
    sif: str  # the cached SIF ("" when not converted)
    note: str  # "" or what is special (unresolved, converted from an enroot squashfs ...)


@dataclass(frozen=True)
class PyxisContext:
    """What ``pyxis.sh.j2`` (``hpcbridge sbatch``) sees."""

    header: tuple[str, ...]  # the script's own #SBATCH lines, pyxis options commented out
    script_name: str
    sbatch_options: tuple[str, ...]  # sbatch options given on the command line
    notes: tuple[str, ...]  # "# Note: ..." lines of the header
    images: tuple[PyxisImage, ...]
    submission_id: Optional[str]
    task_offset: int  # always 0: a pyxis script is one task
    outcomes_dir: Optional[str]
    signals: tuple[Signal, ...]
    modules: tuple[str, ...]  # runtime.modules
    body: str  # the script, byte-exact, written to a private directory at run time
    body_name: str  # its file name there
    script_args: tuple[str, ...]  # the script's arguments
    shim: str  # the srun shim (bash), written next to it as bin/srun at run time
    whole: tuple[str, ...]  # pyxis options of the whole script: it runs in the container

    def __post_init__(self) -> None:
        _check_lines("header", self.header)
        _check_names(s.name for s in self.signals)


TemplateContext = Union[JobContext, PyxisContext]


def template_variables(ctx: TemplateContext) -> dict[str, object]:
    """The attributes of ``ctx`` as template variables (not copied, not converted)."""
    return {f.name: getattr(ctx, f.name) for f in fields(ctx)}


def _shell_names(
    signals: Iterable[Signal], formats: Iterable[TaskFormat], arrays: Iterable[InputArray]
) -> list[str]:
    out = [s.name for s in signals] + [f.var for f in formats]
    for item in arrays:
        out += [item.field, item.var, item.array]
    return out


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if not _SHELL_NAME.match(name):
            raise ValueError(f"not a shell name in a template context: {name!r}")


def _check_lines(what: str, lines: Iterable[str]) -> None:
    for line in lines:
        if "\n" in line or "\x00" in line:
            raise ValueError(f"{what}: a line break or NUL in a raw template line: {line!r}")
