"""The Walmart Marketplace simulator (``CHANNEL_APIS.md`` §3 and §6 "Walmart")."""

from channels.simulators.walmart.simulator import WalmartSimulator

__all__ = ["WalmartSimulator"]
