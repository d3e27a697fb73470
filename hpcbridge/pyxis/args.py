"""Parse a pyxis-style ``sbatch`` command line and a batch script's header (pure).

``hpcbridge sbatch [sbatch options] [--container-*...] [script.sh [args] | --wrap=CMD]``
(no script and no ``--wrap``: the script is read from standard input, as sbatch
does).  sbatch options pass through to sbatch.  ``--container-*`` options for the
whole script come from the command line, then ``#SBATCH`` lines, then
``PYXIS_CONTAINER_*`` variables (pyxis' precedence); an ``#SBATCH`` line may mix
Slurm and pyxis options (its Slurm options stay on the line).  With an image (or
a name) for the whole script, the script runs inside the container, as pyxis
runs it (``sbatch_support``); without one it runs on the host and its ``srun
--container-*`` steps run in containers.  See docs/pyxis.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from hpcbridge.errors import InputError
from hpcbridge.pyxis.options import RawOptions, from_environment, is_pyxis_word, take
from hpcbridge.pyxis.values import Mount, name_and_flag, parse_mounts, unshare_list
from hpcbridge.scheduler.sbatch_options import directives, take_option

#: hpcbridge's own flags among the sbatch options
OWN_FLAGS = ("--dry-run",)
WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"
STDIN = "-"


@dataclass(frozen=True)
class ContainerOptions:
    """pyxis options, checked and interpreted (relative paths against the job's directory)."""

    image: Optional[str] = None
    mounts: tuple[Mount, ...] = ()
    workdir: Optional[str] = None  # as given (relative: under the image's WorkingDir)
    env: tuple[str, ...] = ()
    name: Optional[str] = None
    name_flag: str = "auto"
    save: Optional[str] = None
    unshare: tuple[str, ...] = ()
    mount_home: Optional[bool] = None
    remap_root: Optional[bool] = None
    entrypoint: Optional[bool] = None
    writable: Optional[bool] = None


def interpret(raw: RawOptions, cwd: str) -> ContainerOptions:
    """Check every value of ``raw`` the way pyxis (and the run-time shim) will read it."""
    mounts: list[Mount] = []
    for value in raw.mounts:
        mounts += [m for m in parse_mounts(value, cwd) if m not in mounts]
    env: list[str] = []
    for value in raw.env:
        for var in (n for n in value.split(",") if n):
            if not var.replace("_", "a").isalnum() or var[0].isdigit() or not var.isascii():
                raise InputError(
                    f"--container-env name {var!r} is not a variable name",
                    "list names separated by commas, e.g. --container-env=FOO,BAR",
                )
            env.append(var)
    name: Optional[str] = None
    flag = "auto"
    if raw.name:
        name, flag = name_and_flag(raw.name)
    save = raw.values.get("save")
    if save is not None:
        if save.endswith("/"):
            raise InputError(f"--container-save={save} must name a file", "e.g. ./saved.sqsh")
        save = os.path.normpath(os.path.join(cwd, save))
    v = raw.values
    return ContainerOptions(
        image=raw.image,
        mounts=tuple(mounts),
        workdir=v.get("workdir"),
        env=tuple(env),
        name=name,
        name_flag=flag,
        save=save,
        unshare=tuple(unshare_list(v["unshare"])) if "unshare" in v else (),
        mount_home=raw.flags.get("home"),
        remap_root=raw.flags.get("remap_root"),
        entrypoint=raw.flags.get("entrypoint"),
        writable=raw.flags.get("writable"),
    )


@dataclass
class CommandLine:
    sbatch: list[str] = field(default_factory=list)
    pyxis: RawOptions = field(default_factory=RawOptions)
    dry_run: bool = False
    wrap: Optional[str] = None
    script: str = STDIN  # a path, or "-": standard input
    args: list[str] = field(default_factory=list)


def parse_command_line(argv: Sequence[str], cwd: str) -> CommandLine:
    """Split ``argv`` into sbatch options, pyxis options, the script and its arguments."""
    line = CommandLine()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in OWN_FLAGS:
            line.dry_run = True
            i += 1
        elif is_pyxis_word(arg):
            i = take(argv, i, line.pyxis)
        elif arg == "--wrap" or arg.startswith("--wrap="):
            got: list[str] = []
            i = take_option(argv, i, got)
            line.wrap = got[0].partition("=")[2] if len(got) == 1 else got[1]
        else:
            i = take_option(argv, i, line.sbatch)
    rest = list(argv[i:])
    if line.wrap is not None:
        if rest:
            raise InputError(
                f"--wrap and a script ({rest[0]}) given together", "give one of them (as sbatch)"
            )
        return line
    if rest and rest[0] != STDIN:
        line.script = os.path.join(cwd, rest[0])
    line.args = rest[1:]
    return line


@dataclass(frozen=True)
class HeaderLine:
    """One ``#SBATCH`` line of the script."""

    number: int  # 0-based line number
    text: str  # as written
    slurm: tuple[str, ...]  # its Slurm options (what sbatch keeps)
    pyxis: bool  # it held pyxis options


def sbatch_word(word: str) -> str:
    """One word quoted for sbatch's ``#SBATCH`` reader (quotes group, backslash escapes)."""
    if word and not any(c in word for c in " \t\"'\\#"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rewrite_header_line(line: HeaderLine) -> list[str]:
    """The line as the generated script carries it: pyxis options handled by hpcbridge."""
    if not line.pyxis:
        return [line.text]
    out = ["# (pyxis options, handled by hpcbridge) " + line.text.strip()]
    if line.slurm:
        out.append("#SBATCH " + " ".join(sbatch_word(w) for w in line.slurm))
    return out


def read_header(text: str) -> tuple[list[HeaderLine], RawOptions, list[str]]:
    """The ``#SBATCH`` lines, the pyxis options they hold, and notes for the user."""
    lines = text.splitlines()
    header: list[HeaderLine] = []
    raw = RawOptions()
    notes: list[str] = []
    for n, words in directives(text):
        where = f"script line {n + 1}: "
        slurm: list[str] = []
        i = 0
        has_pyxis = False
        while i < len(words):
            if words[i].startswith("--") and is_pyxis_word(words[i]):
                has_pyxis = True
                before = len(raw.values), len(raw.mounts), len(raw.env)
                i = take(words, i, raw, where)
                _no_dollar(raw, before, where)
            else:
                slurm.append(words[i])
                i += 1
        if any("$" in w for w in slurm):
            notes.append(
                f"{where}sbatch does not expand variables in #SBATCH lines: "
                f"{' '.join(w for w in slurm if '$' in w)} is used as written"
            )
        header.append(HeaderLine(n, lines[n], tuple(slurm), has_pyxis))
    return header, raw, notes


def _no_dollar(raw: RawOptions, before: tuple[int, int, int], where: str) -> None:
    new = list(raw.values.values())[before[0] :] + raw.mounts[before[1] :] + raw.env[before[2] :]
    for value in new:
        if "$" in value:
            raise InputError(
                f"{where}{value!r}: sbatch does not expand $VARIABLES in #SBATCH lines "
                "(pyxis gets the text as written)",
                "write the value out, or give the option on the hpcbridge sbatch command "
                "line, where your shell expands it",
            )


@dataclass(frozen=True)
class PyxisRequest:
    sbatch_options: tuple[str, ...]  # passed to sbatch on its command line
    whole: RawOptions  # container options for the whole script (may be empty)
    container: ContainerOptions  # the same, interpreted
    script: str  # path of the user's batch script ("-": stdin, "--wrap")
    script_args: tuple[str, ...]
    text: str
    header: tuple[HeaderLine, ...]
    notes: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def whole_script(self) -> bool:
        """The script itself runs in the container (an image or name for sbatch)."""
        return self.whole.enabled


def plan_request(
    argv: Sequence[str],
    read_script: Callable[[str], str],
    environ: Mapping[str, str],
    cwd: str,
) -> PyxisRequest:
    """The whole parse: command line, the script's ``#SBATCH`` lines, ``PYXIS_*`` defaults."""
    line = parse_command_line(argv, cwd)
    if line.wrap is not None:
        text, script = WRAP_HEADER + line.wrap + "\n", "--wrap"
    else:
        text, script = read_script(line.script), line.script
    if not text.startswith("#!"):
        raise InputError(
            f"{'standard input' if script == STDIN else script} does not start with #!",
            "the first line of a batch script names its interpreter, e.g. #!/bin/bash",
        )
    header, in_script, notes = read_header(text)
    whole = from_environment(environ).merged_under(in_script).merged_under(line.pyxis)
    container = interpret(whole, cwd)
    if whole and not whole.enabled:
        notes.append(
            "container options without --container-image or --container-name are ignored "
            "for the script itself (as pyxis does); srun steps still read PYXIS_CONTAINER_*"
        )
        whole = RawOptions()
        container = ContainerOptions()
    return PyxisRequest(
        tuple(line.sbatch),
        whole,
        container,
        script,
        tuple(line.args),
        text,
        tuple(header),
        tuple(notes),
        line.dry_run,
    )
