"""The Shopify simulator: Admin GraphQL and signed webhooks, as CHANNEL_APIS.md §1 describes."""
