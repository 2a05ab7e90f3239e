"""eBay: the Inventory API out, Platform Notifications in (CHANNEL_APIS.md §5)."""
