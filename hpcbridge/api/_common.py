"""What every api function starts from: the configuration and, for records, a session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import ConfigError

if TYPE_CHECKING:
    from hpcbridge.config import Config
    from hpcbridge.tracking.session import Session


def config(
    overrides: Optional[Mapping[str, object]] = None, labels: Optional[Mapping[str, str]] = None
) -> Config:
    """The layered configuration with a command's flags on top (None values are unset)."""
    from hpcbridge.config import load_config

    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return load_config(given, cli_labels=labels)


def config_with_sets(sets: Sequence[str]) -> Config:
    """The configuration with ``--set KEY=VALUE`` overrides (labelled ``--set KEY``)."""
    overrides: dict[str, object] = {}
    labels: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set {item!r} is not KEY=VALUE", "e.g. --set cache.dir=/scratch/me"
            )
        overrides[key.strip()] = value
        labels[key.strip()] = f"--set {key.strip()}"
    return config(overrides, labels)


def session(cfg: Optional[Config] = None) -> Session:
    """The state store, scheduler and poller for one command."""
    from hpcbridge.tracking.session import open_session

    return open_session(cfg if cfg is not None else config())
