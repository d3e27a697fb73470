"""Property tests: any site document or HPCBRIDGE_* value gives a Config or a ConfigError."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcbridge.config.layers import SITE_LEVEL, Layer, build_config
from hpcbridge.config.loader import env_layer, parse_document, read_defaults
from hpcbridge.config.schema import FIELDS, PARTITION_FIELDS
from hpcbridge.errors import ConfigError

TEXT = st.text(max_size=10)
SCALAR = st.one_of(
    TEXT,
    st.integers(min_value=-3, max_value=10**6),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(datetime.time(0, 30)),
    st.sampled_from(
        ["/scratch", "$HOME/x", "~/y", "gzip", "pmix", "nvidia", "1:00:00", "4G", "A*"]
    ),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=2),
    max_leaves=5,
)
SECTION = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda s: st.tuples(
        st.just(s), st.dictionaries(st.sampled_from(sorted(FIELDS[s])), VALUE, max_size=3)
    )
)
PARTITIONS = st.dictionaries(
    st.sampled_from(["a", "b", "gpu"]),
    st.dictionaries(st.sampled_from(sorted(PARTITION_FIELDS)), VALUE, max_size=3),
    max_size=2,
)
ENV = {"HOME": "/home/u", "USER": "u"}


def _build(doc: dict[str, Any]) -> None:
    defaults = parse_document(read_defaults(), "default", "/", ENV)
    values = parse_document(doc, "site.toml", "/etc/hpcbridge", ENV)
    build_config(
        [Layer("default", 0, defaults, {}), Layer("site.toml", SITE_LEVEL, values, {})],
        ["site.toml"],
        ENV,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(SECTION, max_size=4), PARTITIONS)
def test_any_site_document(
    sections: list[tuple[str, dict[str, Any]]], partitions: dict[str, Any]
) -> None:
    doc: dict[str, Any] = dict(sections)
    if partitions:
        doc["partitions"] = partitions
    try:
        _build(doc)
    except ConfigError as exc:
        assert str(exc).startswith("site.toml: ") and "\n" not in str(exc)


ENV_NAMES = [f"HPCBRIDGE_{s.upper()}_{k.upper()}" for s, keys in FIELDS.items() for k in keys]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(ENV_NAMES), st.text(max_size=12), max_size=3))
def test_any_environment_value(values: dict[str, str]) -> None:
    try:
        env_layer({**ENV, **values}, "/work")
    except ConfigError as exc:
        assert str(exc).startswith("HPCBRIDGE_") or "environment variable" in str(exc)
