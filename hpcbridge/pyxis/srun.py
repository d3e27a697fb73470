"""An ``srun`` command line: its Slurm options, pyxis options and the command (pure).

srun stops reading options at the first word that is neither an option nor the
value of one (getopt, no permutation: ``POSIXLY_CORRECT``-like for srun), so
finding the command needs to know which options take a value.  The same table
is rendered into the run-time shim (templates/pyxis-srun.sh.j2), so the shim
and this reader split a line the same way.  Facts: Slurm 22.05 srun(1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hpcbridge.pyxis.options import RawOptions, is_pyxis_word, take
from hpcbridge.scheduler.sbatch_options import VALUE_LONG as SBATCH_VALUE_LONG

#: srun long options that take a value (as --opt=value or --opt value)
VALUE_LONG = frozenset(
    (SBATCH_VALUE_LONG - {"array", "batch", "wrap", "export-file", "kill-on-invalid-dep"})
    | {
        "accel-bind", "bcast-exclude", "container-id", "cpu-bind", "epilog", "export",
        "het-group", "jobid", "launcher-opts", "mpi", "msg-timeout", "ntasks-per-tres",
        "prolog", "relative", "slurmd-debug", "task-epilog", "task-prolog", "threads",
        "tres-bind", "tres-per-task", "wait",
    }
)  # fmt: skip
#: srun short options that take a value (attached, -N2, or as the next word)
VALUE_SHORT = "AbBcCdDeGiJLmMnNopqrStTwWx"
#: options that ask for GPUs, at job or step level
GPU_LONG = ("gpus", "gpus-per-node", "gpus-per-task", "gpus-per-socket")
GPU_SHORT = "G"


@dataclass
class SrunLine:
    slurm: list[str] = field(default_factory=list)  # every other option, as written
    pyxis: RawOptions = field(default_factory=RawOptions)
    command: list[str] = field(default_factory=list)


def split_srun(argv: Sequence[str], where: str = "") -> SrunLine:
    """Split srun's arguments (after the word ``srun``) the way srun reads them."""
    line = SrunLine()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            line.slurm.append(arg)
            i += 1
            break
        if arg.startswith("--") and is_pyxis_word(arg):
            i = take(argv, i, line.pyxis, where)
            continue
        if not arg.startswith("-") or arg == "-":
            break
        i = _take_slurm(argv, i, line.slurm)
    line.command = list(argv[i:])
    return line


def _take_slurm(argv: Sequence[str], i: int, out: list[str]) -> int:
    arg = argv[i]
    out.append(arg)
    if arg.startswith("--"):
        if "=" not in arg and arg[2:] in VALUE_LONG and i + 1 < len(argv):
            out.append(argv[i + 1])
            return i + 2
        return i + 1
    for j in range(1, len(arg)):
        if arg[j] in VALUE_SHORT:
            if j + 1 == len(arg) and i + 1 < len(argv):
                out.append(argv[i + 1])
                return i + 2
            break
    return i + 1


def option_values(words: Sequence[str], long: str, short: str = "") -> list[str]:
    """The values of one Slurm option among ``words`` (``--long=V``, ``--long V``, ``-sV``, ``-s V``)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if long and w == f"--{long}" and i + 1 < len(words):
            out.append(words[i + 1])
            i += 1
        elif long and w.startswith(f"--{long}="):
            out.append(w.partition("=")[2])
        elif short and w.startswith(f"-{short}") and not w.startswith("--"):
            if len(w) > 2:
                out.append(w[2:])
            elif i + 1 < len(words):
                out.append(words[i + 1])
                i += 1
        i += 1
    return out


def asks_for_gpus(words: Sequence[str]) -> bool:
    """Whether Slurm options ask for GPUs: ``--gres=gpu[:type]:N``, ``--gpus*``, ``-G``."""
    for value in option_values(words, "gres"):
        for item in value.split(","):
            parts = item.split(":")
            if parts[0] == "gpu" and (len(parts) == 1 or parts[-1] != "0"):
                return True
    if any(v not in ("0", "") for long in GPU_LONG for v in option_values(words, long)):
        return True
    return any(v != "0" for v in option_values(words, "", GPU_SHORT))
