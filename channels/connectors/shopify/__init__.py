"""Shopify: Admin GraphQL writes and reads, HMAC-signed webhooks (CHANNEL_APIS.md §1)."""
