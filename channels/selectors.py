"""Reads about channels shared by the push pipeline, the dashboard and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from channels.buffers import (
    BufferRuleValues,
    Explanation,
    Step,
    explain_listed_quantity,
    listed_quantity,
)
from channels.models import BufferRule, Channel, Listing
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
    if listing.sku_id is None:
        return Explanation(
            steps=(Step("no SKU mapped: a mapping gap lists nothing", 0),), listed=0
        )
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


def listed_quantities(
    *, channel: Channel, listings: Sequence[Listing], now: dt.datetime | None = None
) -> dict[int, int]:
    """Each listing's quantity for its channel, in three queries whatever the count.

    A listing without a SKU lists nothing (it is a mapping gap, not a product).
    """
    now = now or timezone.now()
    sku_ids = {listing.sku_id for listing in listings if listing.sku_id is not None}
    location_ids = list(channel.locations.values_list("pk", flat=True))
    ats_by_sku = dict(
        StockLevel.objects.filter(sku_id__in=sku_ids, location_id__in=location_ids)
        .values("sku_id")
        .annotate(ats=Sum(F("on_hand") - F("committed") - F("reserved")))
        .values_list("sku_id", "ats")
    )
    rules = BufferRule.objects.filter(
        Q(listing_id__in=[listing.pk for listing in listings])
        | Q(sku_id__in=sku_ids, listing__isnull=True)
        | Q(sku__isnull=True, listing__isnull=True),
        channel=channel,
    )
    channel_rule: BufferRule | None = None
    rule_by_sku: dict[int, BufferRule] = {}
    rule_by_listing: dict[int, BufferRule] = {}
    for rule in rules:
        if rule.listing_id is not None:
            rule_by_listing[rule.listing_id] = rule
        elif rule.sku_id is not None:
            rule_by_sku[rule.sku_id] = rule
        else:
            channel_rule = rule
    quantities: dict[int, int] = {}
    for listing in listings:
        if listing.sku_id is None:
            quantities[listing.pk] = 0
            continue
        effective_rule = (
            rule_by_listing.get(listing.pk) or rule_by_sku.get(listing.sku_id) or channel_rule
        )
        quantities[listing.pk] = listed_quantity(
            ats=int(ats_by_sku.get(listing.sku_id, 0)),
            rule=buffer_rule_values(effective_rule),
            out_of_stock_threshold=channel.out_of_stock_threshold,
            now=now,
        )
    return quantities
