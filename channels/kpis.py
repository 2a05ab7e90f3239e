"""Sync-health figures for the console, the metrics endpoint and the KPI API.

Selectors only: each reads, none writes.
"""

from __future__ import annotations

from django.db.models import QuerySet

from channels.models import Channel


def channels_in_console_order() -> QuerySet[Channel]:
    """Every channel, by name: the order the console lists them in."""
    return Channel.objects.order_by("name", "id")
