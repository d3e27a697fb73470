"""The folder is the marker: every test under tests/facts is ``facts`` and ``testbed``.

``facts`` selects them (``pytest -m facts``, ``make test-facts``); ``testbed`` keeps
them out of ``-m 'not testbed'`` runs, since they all need the running testbed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.facts)
            item.add_marker(pytest.mark.testbed)
