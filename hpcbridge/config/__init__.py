"""Layered site configuration: ``load_config`` -> :class:`Config`; ``validate_job``.

See docs/site-admin.md for every key, its default and the layering rules.
"""

from __future__ import annotations

from hpcbridge.config.loader import load_config
from hpcbridge.config.schema import (
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
from hpcbridge.config.validate import (
    bind_problem,
    effective_gpu_vendor,
    effective_gres_name,
    effective_partition_name,
    effective_pmi,
    effective_time,
    resolve_partition,
    validate_job,
)

__all__ = [
    "BindsConfig",
    "CacheConfig",
    "Config",
    "ConvertConfig",
    "EnvConfig",
    "GpuConfig",
    "LimitsConfig",
    "MpiConfig",
    "Partition",
    "PollingConfig",
    "RuntimeConfig",
    "SchedulerConfig",
    "StateConfig",
    "TemplatesConfig",
    "bind_problem",
    "effective_gpu_vendor",
    "effective_gres_name",
    "effective_partition_name",
    "effective_pmi",
    "effective_time",
    "load_config",
    "resolve_partition",
    "validate_job",
]
