"""System checks of the channels app."""

from __future__ import annotations

from django.core import checks

from channels.connectors.registry import CONNECTORS


def _channel_check_ids() -> list[str]:
    return [message.id for message in checks.run_checks() if message.id == "channels.E001"]


def test_every_offered_platform_has_a_connector_as_shipped():
    """The platforms offered for channels today all have a connector: the check is quiet."""
    assert _channel_check_ids() == []


def test_the_system_check_refuses_a_platform_offered_without_a_connector(monkeypatch):
    """A platform an operator could choose with no connector behind it fails `check`."""
    monkeypatch.delitem(CONNECTORS, "shopify")
    assert _channel_check_ids() == ["channels.E001"]
