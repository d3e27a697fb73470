"""Layered site configuration: ``load_config`` -> :class:`Config`; ``validate_job``.

See docs/site-admin.md for every key, its default and the layering rules.

Modules, in the order data flows through them: ``loader`` (reads the defaults,
the site/user/project files, ``HPCBRIDGE_*`` variables and CLI overrides into
layers; ``check_file``), ``values`` (converts one value by its kind), ``layers``
(merges the layers under the site policies into a ``Config``), ``schema`` (the
table of keys and kinds, the frozen dataclasses), ``validate`` (a job against
the site), ``display`` (``config show``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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

_VALIDATE = (
    "bind_problem",
    "effective_gpu_vendor",
    "effective_gres_name",
    "effective_partition_name",
    "effective_pmi",
    "effective_time",
    "resolve_partition",
    "validate_job",
)


def __getattr__(name: str) -> Any:
    """``validate`` is imported on first use: commands that only load the configuration
    (``hpcbridge convert`` of a cached image) do not pay for it and the render tables."""
    if name not in _VALIDATE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("hpcbridge.config.validate"), name)
    globals()[name] = value
    return value


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
