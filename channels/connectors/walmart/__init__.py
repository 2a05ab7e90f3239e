"""Walmart Marketplace (CHANNEL_APIS.md §3)."""
