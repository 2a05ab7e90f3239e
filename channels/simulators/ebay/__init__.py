"""The eBay simulator (``CHANNEL_APIS.md`` §5 and §6 "eBay")."""

from channels.simulators.ebay.simulator import EbaySimulator

__all__ = ["EbaySimulator"]
