"""Merging configuration layers into the :class:`~hpcbridge.config.schema.Config`.

A :class:`Layer` holds the converted values of one source (the packaged defaults,
a file, the environment, the command line); :func:`build_config` merges them
(later wins per key) under the site policies, fills the computed defaults,
builds the dataclasses and runs the cross-key checks.  Pure: the layers arrive
already read and converted (:mod:`hpcbridge.config.loader`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from hpcbridge.config.schema import (
    FIELDS,
    PARTITION_FIELDS,
    BindsConfig,
    CacheConfig,
    Config,
    ConvertConfig,
    EnvConfig,
    GpuConfig,
    LimitsConfig,
    MpiConfig,
    Partition,
    PollingConfig,
    RuntimeConfig,
    SchedulerConfig,
    StateConfig,
    TemplatesConfig,
)
from hpcbridge.errors import ConfigError
from hpcbridge.fsutil import xdg_dir
from hpcbridge.images.sif.compression import bounds as level_bounds
from hpcbridge.images.sif.compression import with_levels
from hpcbridge.slurm_syntax import check_pmi

#: Level of the defaults and the site file; user, project, env and CLI are above it.
SITE_LEVEL = 1


@dataclass(frozen=True)
class Layer:
    """One configuration layer: converted values by dotted key, and its label."""

    label: str  # file path, "default", "HPCBRIDGE_..." (per value), "--flag"
    level: int  # SITE_LEVEL for defaults/site file, higher for user-side layers
    values: dict[str, Any]
    labels: dict[str, str]  # per-key source label (env/CLI layers differ per key)


def build_config(
    layers: Sequence[Layer], files: Sequence[str], environ: Mapping[str, str]
) -> Config:
    """Merge layers (later wins per key) with the site policies, build the dataclasses."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    floor: Optional[float] = None
    for layer in layers:
        if layer.level > 1 and floor is None:
            floor = values.get("polling.min_interval")
        for dotted, value in layer.values.items():
            label = layer.labels.get(dotted, layer.label)
            if dotted == "polling.min_interval" and floor is not None and value < floor:
                warnings.append(
                    f"{label}: polling.min_interval = {value:g} is below the site minimum "
                    f"{floor:g} s ({sources[dotted]}); using {floor:g}"
                )
                continue
            if dotted == "binds.deny" and layer.level > 1:
                merged = tuple(dict.fromkeys((*values.get(dotted, ()), *value)))
                values[dotted] = merged
                sources[dotted] = f"{sources[dotted]} + {label}"
                continue
            values[dotted] = value
            sources[dotted] = label
    defaults = _computed_defaults(values, environ)
    for dotted, value in defaults.items():
        if dotted not in values:
            values[dotted] = value
            sources[dotted] = "default"
    cfg = _assemble(values, sources, files, warnings)
    _check(cfg)
    return cfg


def _computed_defaults(values: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    env = dict(environ)
    out: dict[str, Any] = {
        "cache.dir": xdg_dir("cache", env),
        "state.dir": xdg_dir("state", env),
        "runtime.executable": values.get("runtime.flavor", "apptainer"),
    }
    for section, keys in FIELDS.items():
        for key in keys:
            out.setdefault(f"{section}.{key}", None)
    names = {k.split(".")[1] for k in values if k.startswith("partitions.")}
    for name in names:
        for key in PARTITION_FIELDS:
            out[f"partitions.{name}.{key}"] = _partition_default(key)
    return out


def _partition_default(key: str) -> Any:
    return {"gpu_vendor": "none", "default": False}.get(key)


def _assemble(
    values: dict[str, Any], sources: dict[str, str], files: Sequence[str], warnings: list[str]
) -> Config:
    def sec(section: str) -> dict[str, Any]:
        return {k: values[f"{section}.{k}"] for k in FIELDS[section]}

    names = sorted({k.split(".")[1] for k in values if k.startswith("partitions.")})
    partitions = {
        name: Partition(
            name=name, **{k: values[f"partitions.{name}.{k}"] for k in PARTITION_FIELDS}
        )
        for name in names
    }
    for name in names:
        sources.pop(f"partitions.{name}", None)
    clean_sources = {k: v for k, v in sources.items() if k in _all_keys(names)}
    return Config(
        runtime=RuntimeConfig(**sec("runtime")),
        binds=BindsConfig(**sec("binds")),
        cache=CacheConfig(**sec("cache")),
        convert=ConvertConfig(**sec("convert")),
        env=EnvConfig(**sec("env")),
        polling=PollingConfig(**sec("polling")),
        scheduler=SchedulerConfig(**sec("scheduler")),
        state=StateConfig(**sec("state")),
        templates=TemplatesConfig(**sec("templates")),
        gpu=GpuConfig(**sec("gpu")),
        mpi=MpiConfig(**sec("mpi")),
        limits=LimitsConfig(**sec("limits")),
        partitions=partitions,
        sources=clean_sources,
        layers=tuple(files),
        warnings=tuple(warnings),
    )


def _all_keys(partition_names: Sequence[str]) -> list[str]:
    keys = [f"{s}.{k}" for s, ks in FIELDS.items() for k in ks]
    keys += [f"partitions.{n}.{k}" for n in partition_names for k in PARTITION_FIELDS]
    return keys


def _check(cfg: Config) -> None:
    """Cross-key checks, naming the source of the offending value."""
    _check_polling(cfg)
    _check_pmi(cfg)
    bounds = level_bounds(cfg.convert.compression)
    if bounds is None and cfg.set_no_earlier("convert.level", "convert.compression"):
        raise ConfigError(  # a level from a lower layer (the site's, for gzip) does not apply
            f"{cfg.source_of('convert.level')}: convert.level = {cfg.convert.level} is set, "
            f"but {cfg.convert.compression} takes no compression level",
            f"remove it there, or use a compressor with levels: {with_levels()}",
        )
    if bounds is not None and cfg.convert.level > bounds[1]:
        raise ConfigError(
            f"{cfg.source_of('convert.level')}: convert.level = {cfg.convert.level} is above "
            f"{bounds[1]}, the maximum for {cfg.convert.compression}",
            f"use {bounds[0]}-{bounds[1]}",
        )
    defaults = [p.name for p in cfg.partitions.values() if p.default]
    if len(defaults) > 1:
        where = cfg.source_of(f"partitions.{defaults[-1]}.default")
        raise ConfigError(
            f"{where}: partitions {', '.join(defaults)} are all marked default = true",
            "mark exactly one partition as the default",
        )
    for p in cfg.partitions.values():
        where = cfg.source_of(f"partitions.{p.name}.default_time")
        if p.max_time is not None and p.default_time is not None and p.default_time > p.max_time:
            raise ConfigError(
                f"{where}: partitions.{p.name}.default_time is above its max_time",
                "lower default_time or raise max_time",
            )
        if p.gpus_per_node and not p.has_gpus:
            raise ConfigError(
                f"{cfg.source_of(f'partitions.{p.name}.gpus_per_node')}: partitions.{p.name} "
                'has gpus_per_node but gpu_vendor = "none"',
                'set gpu_vendor = "nvidia" or "amd"',
            )


def _check_pmi(cfg: Config) -> None:
    """Every PMI the site names is one srun has here (mpi.pmi_types) or has had at all."""
    named = [(f"mpi.{k}", getattr(cfg.mpi, k)) for k in ("pmi", "openmpi_pmi", "mpich_pmi")]
    named += [(f"partitions.{p.name}.default_mpi", p.default_mpi) for p in cfg.partitions.values()]
    for dotted, value in named:
        if value is not None:
            check_pmi(value, f"{cfg.source_of(dotted)}: {dotted}", cfg.mpi.pmi_types, ConfigError)


def _check_polling(cfg: Config) -> None:
    """max_backoff >= min_interval; the message names the value set last."""
    low, high = cfg.polling.min_interval, cfg.polling.max_backoff
    if high >= low:
        return
    if cfg.set_no_earlier("polling.max_backoff", "polling.min_interval"):
        raise ConfigError(
            f"{cfg.source_of('polling.max_backoff')}: polling.max_backoff = {high:g} "
            f"is below polling.min_interval = {low:g}",
            "raise max_backoff",
        )
    raise ConfigError(
        f"{cfg.source_of('polling.min_interval')}: polling.min_interval = {low:g} "
        f"is above polling.max_backoff = {high:g} ({cfg.source_of('polling.max_backoff')})",
        "lower min_interval, or raise polling.max_backoff too",
    )
