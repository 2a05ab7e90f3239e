"""The Shopify simulator: Admin GraphQL and signed webhooks, as CHANNEL_APIS.md §1 describes.

- ``simulator``: the platform (routes, Admin API calls, control API);
- ``state``: shops, items with a level per location, orders;
- ``schema``: the Admin GraphQL schema slice per API version;
- ``graphql``: parsing, validation, cost and execution (graphql-core);
- ``webhooks``: payloads, signatures, the retry policy.
"""

from channels.simulators.shopify.simulator import ShopifySimulator

__all__ = ["ShopifySimulator"]
