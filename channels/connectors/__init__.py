"""Connectors by platform: ``get_connector(channel)`` is the only way in."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from channels.connectors.base import Connector

if TYPE_CHECKING:
    from channels.models import Channel

_REGISTRY: dict[str, type[Connector]] = {}
_BUILTIN_CONNECTOR_MODULES = ("channels.connectors.shopify",)


def register(connector_class: type[Connector]) -> type[Connector]:
    _REGISTRY[connector_class.platform] = connector_class
    return connector_class


def connector_class_for(platform: str) -> type[Connector]:
    _load_builtin_connectors()
    try:
        return _REGISTRY[platform]
    except KeyError:
        raise LookupError(f"No connector for platform {platform!r}.") from None


def get_connector(channel: Channel) -> Connector:
    return connector_class_for(channel.platform)(channel)


def _load_builtin_connectors() -> None:
    # Each module registers itself on import.
    for module in _BUILTIN_CONNECTOR_MODULES:
        importlib.import_module(module)
