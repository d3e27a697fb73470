"""What sbatch itself makes of its options (pure): option tables, ``#SBATCH`` lines,
the settings that decide where a job's log goes, and Slurm's file name patterns.

Facts (Slurm 22.05, checked on the testbed): an option on the command line beats
the same ``SBATCH_*`` environment variable, which beats an ``#SBATCH`` line;
``#SBATCH`` lines are read until the first command; long options may be
abbreviated to a unique prefix.  In ``--output``/``--error`` a relative path is
relative to ``--chdir`` (else the directory sbatch ran in); ``%A`` is the array
job id (the job id for a plain job), ``%a`` the array index (4294967294 for a
plain job), ``%j``/``%J`` the id of the job (of the array *task*: its own id),
``%x`` the job name (default: the script's file name), ``%u`` the user, ``%n``
and ``%t`` 0 and ``%s`` ``batch`` for the batch script, ``%%`` a percent sign;
digits after ``%`` zero-pad numbers (``%3a`` -> ``007``); a name containing a
backslash gets no substitution at all and loses its backslashes (``\\x`` -> ``x``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.errors import InputError

# sbatch 22.05 options that never take a value, or take one only as --opt=value
FLAGS_LONG = frozenset({
    "hold", "ignore-pbs", "no-kill", "overcommit", "no-requeue", "parsable", "quiet", "reboot",
    "requeue", "oversubscribe", "spread-job", "use-min-nodes", "verbose", "wait", "contiguous",
    "test-only", "export", "nice", "propagate", "exclusive", "get-user-env",
    "help", "usage", "version",
})  # fmt: skip
FLAGS_SHORT = frozenset("HkOQsvWhVI")
# sbatch 22.05 options that take a value (as --opt=value or --opt value)
VALUE_LONG = frozenset({
    "array", "account", "bb", "bbf", "begin", "comment", "cpu-freq", "cpus-per-task",
    "dependency", "deadline", "delay-boot", "chdir", "error", "export-file", "gid", "gres",
    "gres-flags", "input", "job-name", "licenses", "clusters", "cluster", "container",
    "distribution", "mail-type", "mail-user", "mcs-label", "ntasks", "ntasks-per-node", "nodes",
    "output", "partition", "power", "priority", "profile", "qos", "core-spec", "signal",
    "switches", "thread-spec", "time", "time-min", "uid", "wckey", "wrap", "cluster-constraint",
    "constraint", "nodefile", "mem", "mincpus", "reservation", "tmp", "nodelist", "exclude",
    "mem-per-cpu", "sockets-per-node", "cores-per-socket", "threads-per-core", "ntasks-per-core",
    "ntasks-per-socket", "cpus-per-gpu", "gpus", "gpu-bind", "gpu-freq", "gpus-per-node",
    "gpus-per-socket", "gpus-per-task", "mem-per-gpu", "mem-bind", "hint", "acctg-freq",
    "open-mode", "kill-on-invalid-dep", "extra-node-info", "prefer", "network", "batch",
    "ntasks-per-gpu",
})  # fmt: skip
# the settings hpcbridge reads: long name -> (short letter, input environment variable)
SETTINGS = {
    "output": ("o", "SBATCH_OUTPUT"),
    "error": ("e", "SBATCH_ERROR"),
    "job-name": ("J", "SBATCH_JOB_NAME"),
    "chdir": ("D", None),
    "array": ("a", "SBATCH_ARRAY_INX"),
    "time": ("t", "SBATCH_TIMELIMIT"),
}
_BY_LETTER = {short: name for name, (short, _) in SETTINGS.items()}
#: %a of a job that is not an array (Slurm's NO_VAL)
NO_ARRAY_INDEX = 4294967294


def take_option(argv: Sequence[str], i: int, out: list[str]) -> int:
    """Append the sbatch option at ``argv[i]`` (with its value) to ``out``; the next index."""
    arg = argv[i]
    if arg.startswith("--"):
        name, eq, _ = arg[2:].partition("=")
        if eq or name in FLAGS_LONG:
            out.append(arg)
            return i + 1
        if name in VALUE_LONG:
            if i + 1 >= len(argv):
                raise InputError(f"sbatch option {arg} needs a value", f"write {arg}=VALUE")
            out.extend([arg, argv[i + 1]])
            return i + 2
        raise InputError(
            f"sbatch option {arg} is not known to hpcbridge",
            f"write it as {arg}=VALUE (or without a value if it is a flag)",
        )
    letter = arg[1:2]
    if letter in FLAGS_SHORT or len(arg) > 2:
        out.append(arg)  # -H, or -pdebug
        return i + 1
    if i + 1 >= len(argv):
        raise InputError(f"sbatch option {arg} needs a value", f"write {arg} VALUE")
    out.extend([arg, argv[i + 1]])
    return i + 2


def directives(text: str) -> list[tuple[int, list[str]]]:
    """``#SBATCH`` lines of the header (until the first command), as (line no, words).

    Words follow sbatch's own reader: whitespace splits, quotes group, backslash
    escapes, an unquoted ``#`` starts a comment.
    """
    out: list[tuple[int, list[str]]] = []
    for n, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if n == 0 and stripped.startswith("#!"):
            continue
        if not stripped or (stripped.startswith("#") and not stripped.startswith("#SBATCH")):
            continue
        if not stripped.startswith("#SBATCH"):
            break
        out.append((n, directive_words(stripped[len("#SBATCH") :])))
    return out


def directive_words(text: str) -> list[str]:
    """One ``#SBATCH`` line's words, split the way sbatch splits them."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    escape = started = False
    for ch in text:
        if escape:
            cur.append(ch)
            escape = False
            continue
        if ch == "\\":
            escape = started = True
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                cur.append(ch)
            continue
        if ch in "\"'":
            quote, started = ch, True
            continue
        if ch == "#":
            break
        if ch.isspace():
            if cur or started:
                words.append("".join(cur))
            cur, started = [], False
            continue
        cur.append(ch)
        started = True
    if cur or started:
        words.append("".join(cur))
    return words


def _long_name(given: str) -> Optional[str]:
    """getopt_long's rule: an exact name, else a unique prefix of one."""
    known = FLAGS_LONG | VALUE_LONG
    if given in known:
        return given
    hits = [n for n in known if n.startswith(given)]
    return hits[0] if len(hits) == 1 else None


def _settings_of(words: Sequence[str]) -> dict[str, str]:
    """The options of :data:`SETTINGS` among ``words`` (later ones win)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        arg = words[i]
        if arg.startswith("--") and len(arg) > 2:
            given, eq, value = arg[2:].partition("=")
            name = _long_name(given)
            if name in SETTINGS and not eq and i + 1 < len(words):
                value, i = words[i + 1], i + 1
            if name in SETTINGS and (eq or value):
                found[name] = value
        elif arg.startswith("-") and arg[1:2] in _BY_LETTER:
            value = arg[2:]
            if not value and i + 1 < len(words):
                value, i = words[i + 1], i + 1
            found[_BY_LETTER[arg[1:2]]] = value
        i += 1
    return found


@dataclass(frozen=True)
class SbatchSettings:
    """Where sbatch puts a job's log and what it calls the job, all sources merged."""

    output: Optional[str] = None
    error: Optional[str] = None
    job_name: Optional[str] = None
    chdir: Optional[str] = None
    array: Optional[str] = None
    time: Optional[str] = None


def effective_settings(
    options: Sequence[str], script_text: str, environ: Mapping[str, str]
) -> SbatchSettings:
    """Command line > ``SBATCH_*`` variables > ``#SBATCH`` lines, as sbatch decides."""
    merged: dict[str, str] = {}
    for _, words in directives(script_text):
        merged.update(_settings_of(words))
    for name, (_, variable) in SETTINGS.items():
        if variable and environ.get(variable):
            merged[name] = environ[variable]
    merged.update(_settings_of(options))
    return SbatchSettings(
        merged.get("output"),
        merged.get("error"),
        merged.get("job-name"),
        merged.get("chdir"),
        merged.get("array"),
        merged.get("time"),
    )


def log_patterns(
    settings: SbatchSettings, cwd: str, *, is_array: bool
) -> tuple[str, Optional[str]]:
    """Absolute ``--output`` and ``--error`` patterns (error None: it goes to the output)."""
    workdir = os.path.join(cwd, settings.chdir) if settings.chdir else cwd
    output = settings.output or ("slurm-%A_%a.out" if is_array else "slurm-%j.out")
    error = settings.error
    return (
        os.path.normpath(os.path.join(workdir, output)),
        os.path.normpath(os.path.join(workdir, error)) if error else None,
    )


_PATTERN = re.compile(r"%(\d*)([A-Za-z%])")
_NUMERIC = frozenset("AajJnt")


@dataclass(frozen=True)
class PatternValues:
    """What a file name pattern may ask about one task (None: not known, or not yet)."""

    job_id: str  # the array job id, or the job id of a plain job
    array_index: Optional[int]  # the LOCAL array index; None for a plain job
    task_job_id: Optional[str]  # the task's own job id (an array task's differs)
    job_name: str
    user: str


def expand_pattern(pattern: str, values: PatternValues) -> str:
    """A Slurm ``--output``/``--error`` pattern -> the file name of one task.

    Raises :class:`LookupError` naming the placeholder that cannot be filled
    (``%N``: the node; ``%j`` of an array task that has not started yet).
    """
    if "\\" in pattern:
        return re.sub(r"\\(.)", r"\1", pattern)
    index = NO_ARRAY_INDEX if values.array_index is None else values.array_index
    table: dict[str, Optional[str]] = {
        "A": values.job_id,
        "a": str(index),
        "j": values.task_job_id if values.array_index is not None else values.job_id,
        "x": values.job_name,
        "u": values.user,
        "n": "0",
        "t": "0",
        "s": "batch",
        "%": "%",
    }
    table["J"] = table["j"]

    def one(m: re.Match[str]) -> str:
        width, letter = m.group(1), m.group(2)
        if letter not in table:
            raise LookupError(f"%{letter}")
        value = table[letter]
        if value is None:
            raise LookupError(f"%{letter}")
        if width and letter in _NUMERIC and value.isdigit():
            return value.zfill(int(width))
        return value

    return _PATTERN.sub(one, pattern)
