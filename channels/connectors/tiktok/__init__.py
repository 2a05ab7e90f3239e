"""TikTok Shop (``CHANNEL_APIS.md`` §4)."""
