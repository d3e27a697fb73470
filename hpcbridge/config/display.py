"""Flat ``key = value`` rendering of a :class:`Config` for ``config show`` (pure)."""

from __future__ import annotations

import json
from typing import Any

from hpcbridge.config.schema import FIELDS, PARTITION_FIELDS, Config


def flat_items(cfg: Config) -> list[tuple[str, str, str]]:
    """``(dotted key, TOML-like value, source)`` in schema order, partitions last."""
    plain = cfg.to_dict()
    rows: list[tuple[str, str, str]] = []
    for section, keys in FIELDS.items():
        for key in keys:
            dotted = f"{section}.{key}"
            rows.append((dotted, _fmt(plain[section][key]), cfg.source_of(dotted)))
    for name in sorted(cfg.partitions):
        for key in PARTITION_FIELDS:
            dotted = f"partitions.{name}.{key}"
            rows.append((dotted, _fmt(plain["partitions"][name][key]), cfg.source_of(dotted)))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(value, ensure_ascii=False)
