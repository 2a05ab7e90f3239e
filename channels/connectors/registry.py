"""The connector of each platform: an explicit table, filled by no import side effect.

A platform is offered to operators (``Channel.Platform``) only when it is here; the
system check ``channels.E001`` fails when one offered has no connector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels.connectors.amazon.connector import AmazonConnector
from channels.connectors.base import Connector
from channels.connectors.ebay.connector import EbayConnector
from channels.connectors.shopify.connector import ShopifyConnector
from channels.connectors.tiktok.connector import TikTokConnector
from channels.connectors.walmart.connector import WalmartConnector

if TYPE_CHECKING:
    from channels.models import Channel

CONNECTORS: dict[str, type[Connector]] = {
    ShopifyConnector.platform: ShopifyConnector,
    WalmartConnector.platform: WalmartConnector,
    AmazonConnector.platform: AmazonConnector,
    EbayConnector.platform: EbayConnector,
    TikTokConnector.platform: TikTokConnector,
}


class UnknownPlatform(LookupError):
    """No connector is registered for the platform."""


def connector_class_for(platform: str) -> type[Connector]:
    try:
        return CONNECTORS[platform]
    except KeyError:
        raise UnknownPlatform(f"No connector for platform {platform!r}.") from None


def get_connector(channel: Channel) -> Connector:
    """The channel's connector, bound to its row (credentials, base URL, settings)."""
    return connector_class_for(channel.platform)(channel)
