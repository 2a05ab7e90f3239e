"""The Amazon SP-API simulator, as CHANNEL_APIS.md §2 and §6 "Amazon SP-API" describe.

- ``simulator``: the platform (LWA, Listings Items, Feeds, FBA Inventory, Orders, control API);
- ``state``: sellers, listings with their FBA sub-states, feeds, documents, orders;
- ``notifications``: envelopes sent to an SQS queue, with duplicates and disorder.
"""

from channels.simulators.amazon.simulator import AmazonSimulator

__all__ = ["AmazonSimulator"]
