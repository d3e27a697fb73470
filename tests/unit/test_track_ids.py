"""Submission ids users type: ``last``, a prefix of the id or of its random part."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.errors import StateError
from hpcbridge.tracking.store import Store


def test_short_unique_prefixes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for name in ("20261206-153257-457c44", "20261206-160000-45a001", "20261207-090000-9b0c1d"):
        (store.submissions / name).mkdir(parents=True)
    assert store.resolve("457c") == "20261206-153257-457c44"  # the random part's prefix
    assert store.resolve("9b") == "20261207-090000-9b0c1d"
    assert store.resolve("20261207") == "20261207-090000-9b0c1d"  # the date's
    assert store.resolve("last") == "20261207-090000-9b0c1d"
    with pytest.raises(StateError, match="'45' matches 2 submissions"):
        store.resolve("45")
    with pytest.raises(StateError, match="no submission 'zz'"):
        store.resolve("zz")


def test_a_missing_state_directory_is_not_created(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    with pytest.raises(StateError):
        store.resolve("last")
    assert store.ids() == []
    assert not (tmp_path / "state").exists()
