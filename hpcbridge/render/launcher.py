"""The per-task launcher: forward per-rank variables into a clean container.

``--cleanenv`` drops every host variable, including the ones Slurm, PMI/PMIx, MPI,
UCX and the GPU binding set *per task* (``SLURM_PROCID``, ``PMIX_RANK``,
``CUDA_VISIBLE_DEVICES``...).  Their values differ per rank, so they cannot be
expanded once in the batch script.  Each task (the batch step itself, or every
rank ``srun``/``mpirun`` starts) therefore runs a tiny bash launcher first::

    /bin/bash -c 'for n in ${!SLURM_@} ...; do ...; done; exec "$@"' hpcb-launch apptainer exec ...

It copies each wanted variable ``NAME`` of its own environment to
``APPTAINERENV_NAME`` (``SINGULARITYENV_`` for SingularityCE) and ``exec``s the
runtime.  Together with ``--no-eval`` the value reaches the container byte-exact
(no CSV parsing as with ``--env``, no shell evaluation).  A variable the job file
sets itself (already exported as ``APPTAINERENV_NAME`` by the batch script) is not
overridden.  Cost: one bash start per task, no other process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Optional

from hpcbridge.errors import ConfigError
from hpcbridge.render.runtime import RunTime, check_args, launcher_lines
from hpcbridge.render.words import Arg

#: Prefixes every task forwards (``PMI`` covers ``PMIX_`` and ``PMI_``).
FORWARD_PREFIXES: tuple[str, ...] = ("SLURM_", "PMI", "OMPI_", "UCX_")
#: Single variables every task forwards when set.
FORWARD_NAMES: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES",
    "SLURMD_NODENAME",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
LAUNCHER_NAME = "hpcb-launch"


def split_allow(entries: Iterable[str], what: str = "env.allow") -> tuple[list[str], list[str]]:
    """Split allow-list entries into (prefixes, names); ``FOO_*`` is a prefix."""
    prefixes: list[str] = []
    names: list[str] = []
    for entry in entries:
        text = entry.strip()
        base = text[:-1] if text.endswith("*") else text
        if not _NAME.match(base):
            raise ConfigError(
                f"{what} entry {entry!r} is not a variable name or NAME_* prefix",
                "use letters, digits and _ (not starting with a digit), optionally ending in *",
            )
        (prefixes if text.endswith("*") else names).append(base)
    return prefixes, names


def launcher_code(
    prefixes: Sequence[str],
    names: Sequence[str],
    env_prefix: str,
    bind_dirs_from: Sequence[str] = (),
    run_time: Optional[RunTime] = None,
) -> str:
    """The bash program of the launcher (passed to ``bash -c``).

    ``bind_dirs_from`` names variables holding a per-task directory the container
    must see (the PMIx server directory lives in Slurm's spool, usually not bound):
    the launcher appends it to ``APPTAINER_BIND`` when it is set, absolute, free of
    ``,``/``:`` and exists.  ``run_time``: per-rank values and checks
    (:mod:`hpcbridge.render.runtime`), resolved before the ``exec``.
    """
    pre = _dedupe(prefixes)
    nam = [n for n in _dedupe(names) if not any(n.startswith(p) for p in pre)]
    lines = []
    target = f'v={env_prefix}$n; [ -n "${{!v+x}}" ] || export "$v=${{!n}}"'
    if pre:
        globs = " ".join("${!" + p + "@}" for p in pre)
        lines.append(f"for n in {globs}; do {target}; done")
    if nam:
        lines.append(f'for n in {" ".join(nam)}; do [ -z "${{!n+x}}" ] || {{ {target}; }}; done')
    if bind_dirs_from:
        bind = "SINGULARITY_BIND" if env_prefix.startswith("SINGULARITY") else "APPTAINER_BIND"
        lines.append(
            "for d in " + " ".join('"${' + v + '%/}"' for v in bind_dirs_from) + "; do "
            f'[[ $d == /* && $d != *[,:]* && -d $d ]] && export {bind}="${{{bind}:+${bind},}}$d"; done'
        )
    if run_time is None:
        lines.append('exec "$@"')
    else:
        lines.extend(launcher_lines(run_time, env_prefix))
    return "; ".join(lines)


def launcher_argv(
    prefixes: Sequence[str],
    names: Sequence[str],
    env_prefix: str,
    bind_dirs_from: Sequence[str] = (),
    run_time: Optional[RunTime] = None,
) -> list[Arg]:
    """``["/bin/bash", "-c", CODE, "hpcb-launch", *CHECKS]``; the runtime argv follows it."""
    code = launcher_code(prefixes, names, env_prefix, bind_dirs_from, run_time)
    tail = check_args(run_time) if run_time is not None else []
    return ["/bin/bash", "-c", code, LAUNCHER_NAME, *tail]


def _dedupe(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
