"""Reads about channels shared by the push pipeline, the dashboard and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels.buffers import BufferRuleValues, Explanation, explain_listed_quantity
from channels.models import BufferRule, Listing
from inventory.models import StockLevel


def effective_buffer_rule(*, listing: Listing) -> BufferRule | None:
    """The listing's override, else the SKU's override, else the channel's rule, else None."""
    rules = BufferRule.objects.filter(
        Q(listing=listing)
        | Q(sku_id=listing.sku_id, listing__isnull=True)
        | Q(sku__isnull=True, listing__isnull=True),
        channel_id=listing.channel_id,
    )
    by_scope: dict[str, BufferRule] = {}
    for rule in rules:
        if rule.listing_id is not None:
            by_scope["listing"] = rule
        elif rule.sku_id is not None:
            by_scope["sku"] = rule
        else:
            by_scope["channel"] = rule
    return by_scope.get("listing") or by_scope.get("sku") or by_scope.get("channel")


def buffer_rule_values(rule: BufferRule | None) -> BufferRuleValues | None:
    if rule is None:
        return None
    return BufferRuleValues(
        percent=rule.percent,
        fixed_units=rule.fixed_units,
        max_cap=rule.max_cap,
        cap_starts_at=rule.cap_starts_at,
        cap_ends_at=rule.cap_ends_at,
    )


def available_to_sell(*, sku_id: int, location_ids: Iterable[int]) -> int:
    """Sum of available (on hand - committed - reserved) over the given locations."""
    total = StockLevel.objects.filter(sku_id=sku_id, location_id__in=list(location_ids)).aggregate(
        ats=Coalesce(Sum(F("on_hand") - F("committed") - F("reserved")), Value(0))
    )["ats"]
    return int(total)


def explain_listing(*, listing: Listing, now: dt.datetime | None = None) -> Explanation:
    """How the listing's quantity is derived from the ATS over its channel's locations."""
    channel = listing.channel
    ats = available_to_sell(
        sku_id=listing.sku_id,
        location_ids=channel.locations.values_list("pk", flat=True),
    )
    return explain_listed_quantity(
        ats=ats,
        rule=buffer_rule_values(effective_buffer_rule(listing=listing)),
        out_of_stock_threshold=channel.out_of_stock_threshold,
        now=now or timezone.now(),
    )
