"""What a pyxis-style job asks Slurm for, checked against the site's partition table (pure).

The job's Slurm options come from its ``#SBATCH`` lines, ``SBATCH_*`` variables
and the command line (sbatch's precedence: later wins).  From them:
the partition (a name the site does not describe is refused when the site
describes partitions), GPUs (``--gres=gpu:N``, ``--gpus``, ``--gpus-per-node``,
``--gpus-per-task``, ``-G``, or a partition whose GPUs the site names) and the
vendor flag every container step gets (``--nv``/``--rocm``, from the partition's
``gpu_vendor``; NVIDIA when the site describes no partitions, as enroot's hook
gives pyxis users the NVIDIA driver), the node count and time limit (refused
above the partition's ``max_nodes``/``max_time``).  Messages name sbatch options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from hpcbridge.config.schema import Config, Partition
from hpcbridge.errors import InputError, JobSpecError
from hpcbridge.job.values import unknown_hint
from hpcbridge.pyxis.srun import asks_for_gpus, option_values
from hpcbridge.slurm_syntax import format_time, parse_time

#: sbatch's input variables for the options read here
ENVIRONMENT = {
    "SBATCH_PARTITION": "--partition",
    "SBATCH_GRES": "--gres",
    "SBATCH_GPUS": "--gpus",
    "SBATCH_GPUS_PER_NODE": "--gpus-per-node",
    "SBATCH_GPUS_PER_TASK": "--gpus-per-task",
    "SBATCH_TIMELIMIT": "--time",
}
DEFAULT_VENDOR = "nvidia"


@dataclass(frozen=True)
class JobResources:
    partition: Optional[str]  # as asked (None: Slurm's default)
    gpus: bool  # the job asks for GPUs
    gpu_vendor: Optional[str]  # the flag every container step gets: nvidia | amd | None
    notes: tuple[str, ...] = ()


def job_words(
    header: Sequence[Sequence[str]], environ: Mapping[str, str], options: Sequence[str]
) -> list[str]:
    """The job's Slurm options in sbatch's precedence order (the last value wins)."""
    words = [w for line in header for w in line]
    for name, option in ENVIRONMENT.items():
        if environ.get(name):
            words.append(f"{option}={environ[name]}")
    return words + list(options)


def _last(words: Sequence[str], long: str, short: str = "") -> Optional[str]:
    found = option_values(words, long, short)
    return found[-1] if found else None


def job_resources(words: Sequence[str], cfg: Config) -> JobResources:
    """Check the request against the site and decide the GPU flag (see the module docstring)."""
    asked = _last(words, "partition", "p")
    parts = _partitions(asked, cfg)
    gpus = asks_for_gpus(words)
    notes: list[str] = []
    for part in parts:
        _check_limits(part, words, gpus, cfg)
    gpu_parts = [p for p in parts if p.has_gpus]
    if gpu_parts:
        vendor: Optional[str] = gpu_parts[0].gpu_vendor
    elif gpus:
        vendor = _site_vendor(cfg)
        notes.append(
            f"GPUs asked for on a partition the site does not describe: containers get "
            f"--{'rocm' if vendor == 'amd' else 'nv'} (the site config's partitions name the vendor)"
        )
    else:
        vendor = None
    return JobResources(asked, gpus, vendor, tuple(notes))


def _site_vendor(cfg: Config) -> str:
    """The vendor of the site's GPU partitions when they agree, else NVIDIA."""
    vendors = {p.gpu_vendor for p in cfg.partitions.values() if p.has_gpus}
    return vendors.pop() if len(vendors) == 1 else DEFAULT_VENDOR


def _partitions(asked: Optional[str], cfg: Config) -> list[Partition]:
    if asked is None:
        default = cfg.default_partition
        return [default] if default else []
    if not cfg.partitions:
        return []
    out = []
    for name in asked.split(","):
        if name not in cfg.partitions:
            raise JobSpecError(
                f"--partition={name} is not a partition of this site",
                unknown_hint(name, cfg.partitions, "partitions"),
            )
        out.append(cfg.partitions[name])
    return out


def _check_limits(part: Partition, words: Sequence[str], gpus: bool, cfg: Config) -> None:
    where = f"partition {part.name!r}"
    if gpus and not part.has_gpus:
        others = [p.name for p in cfg.partitions.values() if p.has_gpus]
        raise JobSpecError(
            f"GPUs asked for (--gres/--gpus) on {where}, which has no GPUs",
            f"use --partition={others[0]}" if others else "remove the GPU request",
        )
    nodes = _last(words, "nodes", "N")
    if part.max_nodes is not None and nodes:
        low = nodes.split("-")[0]
        if low.isdigit() and int(low) > part.max_nodes:
            raise JobSpecError(
                f"--nodes={nodes} is above the {part.max_nodes} nodes of {where}",
                f"ask for at most --nodes={part.max_nodes}",
            )
    time = _last(words, "time", "t")
    if part.max_time is not None and time and time.upper() not in ("UNLIMITED", "INFINITE"):
        try:
            seconds = parse_time(time, "--time", InputError)
        except InputError:
            return  # sbatch judges its own syntax
        if seconds > part.max_time:
            raise JobSpecError(
                f"--time={time} is above the maximum {format_time(part.max_time)} of {where}",
                f"ask for at most --time={format_time(part.max_time)}",
            )
    per_node = [v.rsplit(":", 1)[-1] for v in option_values(words, "gres") if v.startswith("gpu")]
    per_node += option_values(words, "gpus-per-node")
    for count in per_node:
        if part.gpus_per_node is not None and count.isdigit() and int(count) > part.gpus_per_node:
            raise JobSpecError(
                f"{count} GPUs per node asked for, {where} has {part.gpus_per_node}",
                f"ask for at most {part.gpus_per_node}",
            )
