"""Fixtures of the connector tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from channels.connectors.registry import CONNECTORS
from channels.models import Channel
from tests.channels.connectors.reference_platform import (
    PLATFORM,
    ReferencePlatform,
    ReferencePlatformConnector,
)


@pytest.fixture
def reference_platform(monkeypatch) -> Iterator[ReferencePlatform]:
    """The platform serving on a free port, its connector registered for this test."""
    monkeypatch.setitem(CONNECTORS, PLATFORM, ReferencePlatformConnector)
    # Offered for this test only, as a platform with a connector is.
    platform_field = Channel._meta.get_field("platform")
    offered = list(platform_field.choices or [])
    monkeypatch.setattr(platform_field, "choices", [*offered, (PLATFORM, "Reference platform")])
    platform = ReferencePlatform(["A-1", "A-2"])
    thread = threading.Thread(target=platform.serve_forever, daemon=True)
    thread.start()
    yield platform
    platform.shutdown()
    platform.server_close()
