"""The reliability suite uses the channel tests' simulator process; its chaos scenarios
run only when CHAOS is set (``make chaos``), whatever ``-m`` a run is given."""

from __future__ import annotations

import os

import pytest

from tests.channels.conftest import shopify_simulator  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHAOS"):
        return
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not item.get_closest_marker("chaos")]
