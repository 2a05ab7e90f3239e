"""Reads about channels shared by the push pipeline, the dashboard and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from bundles import selectors as bundle_selectors
from channels import rules
from channels.buffers import (
    BufferRuleValues,
    Explanation,
    Step,
    explain_listed_quantity,
    listed_quantity,
)
from channels.models import BufferRule, Channel, Listing
from inventory.models import Sku, StockLevel


def effective_buffer_rule(*, listing: Listing) -> BufferRule | None:
    """The rule that governs the listing (precedence: ``channels.rules``), else None."""
    candidates = BufferRule.objects.filter(
        rules.candidate_rules(
            listing_ids=[listing.pk],
            sku_ids=[] if listing.sku_id is None else [listing.sku_id],
        ),
        channel_id=listing.channel_id,
    )
    return _scoped(candidates).effective(listing_id=listing.pk, sku_id=listing.sku_id)


def _scoped(buffer_rules: Iterable[BufferRule]) -> rules.ScopedRules[BufferRule]:
    return rules.ScopedRules.of(
        rules.Scoped(rule.listing_id, rule.sku_id, rule) for rule in buffer_rules
    )


def buffer_rule_values(rule: BufferRule | None) -> BufferRuleValues | None:
    """The rule's numbers, detached from the model; None for no rule."""
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
    """Available (on hand - committed - reserved) over the given locations; for a bundle,
    as many as its scarcest leaf component allows there (``bundles.rules``)."""
    ats_by_sku = bundle_selectors.available_by_sku(sku_ids=[sku_id], location_ids=location_ids)
    return ats_by_sku.get(sku_id, 0)


def explain_listing(*, listing: Listing, now: dt.datetime | None = None) -> Explanation:
    """How the listing's quantity is derived from the ATS over its channel's locations.

    A bundle's explanation starts with its BOM arithmetic: each leaf component's ATS,
    divided by its units per bundle; the smallest is the bundle's ATS.
    """
    return explain_listings(listings=[listing], now=now)[listing.pk]


def explain_listings(
    *, listings: Sequence[Listing], now: dt.datetime | None = None
) -> dict[int, Explanation]:
    """``explain_listing`` of each listing, by id, in a number of queries that grows with
    the distinct channels and SKUs among them, not with the listings (a SKU's page)."""
    now = now or timezone.now()
    mapped = [listing for listing in listings if listing.sku_id is not None]
    explanations = {
        listing.pk: Explanation(
            steps=(Step("no SKU mapped: a mapping gap lists nothing", 0),), listed=0
        )
        for listing in listings
        if listing.sku_id is None
    }
    if not mapped:
        return explanations
    channel_ids = {listing.channel_id for listing in mapped}
    locations_of: dict[int, set[int]] = {channel_id: set() for channel_id in channel_ids}
    for channel_id, location_id in Channel.locations.through.objects.filter(
        channel_id__in=channel_ids
    ).values_list("channel_id", "location_id"):
        locations_of[channel_id].add(location_id)
    sku_ids = {listing.sku_id for listing in mapped if listing.sku_id is not None}
    bundle_ids = bundle_selectors.bundle_ids_among(sku_ids=sku_ids)
    rules_of: dict[int, list[BufferRule]] = {channel_id: [] for channel_id in channel_ids}
    for rule in BufferRule.objects.filter(
        rules.candidate_rules(listing_ids=[listing.pk for listing in mapped], sku_ids=sku_ids),
        channel_id__in=channel_ids,
    ):
        rules_of[rule.channel_id].append(rule)
    scoped = {channel_id: _scoped(found) for channel_id, found in rules_of.items()}
    # Channels selling from the same locations share their ATS (and BOM arithmetic).
    ats_at: dict[frozenset[int], tuple[dict[int, tuple[Step, ...]], dict[int, int]]] = {}
    for location_set in {frozenset(locations) for locations in locations_of.values()}:
        bom_steps: dict[int, tuple[Step, ...]] = {}
        ats_by_sku = bundle_selectors.available_by_sku(
            sku_ids=sku_ids - bundle_ids, location_ids=location_set
        )
        for bundle_id in bundle_ids:
            bom = bundle_selectors.explain_bundle(bundle_id=bundle_id, location_ids=location_set)
            bom_steps[bundle_id] = tuple(Step(step.label, step.bundles) for step in bom.steps)
            ats_by_sku[bundle_id] = bom.available
        ats_at[location_set] = (bom_steps, ats_by_sku)
    for listing in mapped:
        assert listing.sku_id is not None
        bom_steps, ats_by_sku = ats_at[frozenset(locations_of[listing.channel_id])]
        explanation = explain_listed_quantity(
            ats=ats_by_sku.get(listing.sku_id, 0),
            rule=buffer_rule_values(
                scoped[listing.channel_id].effective(listing_id=listing.pk, sku_id=listing.sku_id)
            ),
            out_of_stock_threshold=listing.channel.out_of_stock_threshold,
            now=now,
        )
        explanations[listing.pk] = Explanation(
            steps=bom_steps.get(listing.sku_id, ()) + explanation.steps,
            listed=explanation.listed,
        )
    return explanations


def listed_quantities(
    *, channel: Channel, listings: Sequence[Listing], now: dt.datetime | None = None
) -> dict[int, int]:
    """Each listing's quantity for its channel, in five queries at most whatever the count.

    A listing without a SKU lists nothing (it is a mapping gap, not a product).
    """
    now = now or timezone.now()
    sku_ids = {listing.sku_id for listing in listings if listing.sku_id is not None}
    location_ids = list(channel.locations.values_list("pk", flat=True))
    ats_by_sku = bundle_selectors.available_by_sku(sku_ids=sku_ids, location_ids=location_ids)
    scoped = _scoped(
        BufferRule.objects.filter(
            rules.candidate_rules(
                listing_ids=[listing.pk for listing in listings], sku_ids=sku_ids
            ),
            channel=channel,
        )
    )
    quantities: dict[int, int] = {}
    for listing in listings:
        if listing.sku_id is None:
            quantities[listing.pk] = 0
            continue
        quantities[listing.pk] = listed_quantity(
            ats=ats_by_sku.get(listing.sku_id, 0),
            rule=buffer_rule_values(
                scoped.effective(listing_id=listing.pk, sku_id=listing.sku_id)
            ),
            out_of_stock_threshold=channel.out_of_stock_threshold,
            now=now,
        )
    return quantities


# Raw, as the rule's SQL is (channels.rules): one SKU over one channel's locations.
_ATS_ON_CHANNEL_SQL = (
    f"SELECT {rules.ats_on_channel_sql(sku_id='%(sku_id)s', channel_id='%(channel_id)s')}"
)


def ats_on_channel(*, sku_id: int, channel_id: int) -> int:
    """The SKU's ATS over the locations the channel sells from (a bundle's by its leaf
    components), as the push pipeline's claim works it out."""
    with connection.cursor() as cursor:
        cursor.execute(_ATS_ON_CHANNEL_SQL, {"sku_id": sku_id, "channel_id": channel_id})
        (ats,) = cursor.fetchone()
    return int(ats)


@dataclass(frozen=True)
class MappingGaps:
    """What stops a channel's map from being complete."""

    channel: Channel
    # Listings the channel has that point at no SKU.
    unmapped_listings: list[Listing]
    # Active SKUs with stock at the channel's locations but no active listing on it.
    unlisted_skus: list[Sku]


def mapping_gaps(*, channel: Channel) -> MappingGaps:
    unmapped = list(channel.listings.filter(sku__isnull=True).order_by("external_id"))
    listed_sku_ids = channel.listings.filter(is_active=True, sku__isnull=False).values("sku_id")
    sellable_here = StockLevel.objects.filter(
        location__in=channel.locations.all(), on_hand__gt=0
    ).values("sku_id")
    unlisted = list(
        Sku.objects.filter(is_active=True, pk__in=sellable_here)
        .exclude(pk__in=listed_sku_ids)
        .order_by("code")
    )
    return MappingGaps(channel=channel, unmapped_listings=unmapped, unlisted_skus=unlisted)


@dataclass(frozen=True)
class RulePreviewRow:
    listing: Listing
    current: int
    previewed: Explanation


def preview_buffer_rule(*, rule: BufferRule, limit: int = 25) -> list[RulePreviewRow]:
    """What an unsaved rule would list for the listings it governs, next to today's figure.

    Listings governed by a narrower override keep it; they are left out.
    """
    listings = Listing.objects.filter(
        channel_id=rule.channel_id, is_active=True, sku__isnull=False
    ).select_related("channel")
    if rule.listing_id is not None:
        listings = listings.filter(pk=rule.listing_id)
    elif rule.sku_id is not None:
        listings = listings.filter(sku_id=rule.sku_id).exclude(buffer_rules__isnull=False)
    else:
        overridden_skus = BufferRule.objects.filter(
            channel_id=rule.channel_id, sku__isnull=False
        ).values("sku_id")
        listings = listings.exclude(sku_id__in=overridden_skus).exclude(buffer_rules__isnull=False)
    now = timezone.now()
    rows = []
    for listing in listings.order_by("external_id")[:limit]:
        assert listing.sku_id is not None
        ats = available_to_sell(
            sku_id=listing.sku_id,
            location_ids=listing.channel.locations.values_list("pk", flat=True),
        )
        rows.append(
            RulePreviewRow(
                listing=listing,
                current=explain_listing(listing=listing, now=now).listed,
                previewed=explain_listed_quantity(
                    ats=ats,
                    rule=buffer_rule_values(rule),
                    out_of_stock_threshold=listing.channel.out_of_stock_threshold,
                    now=now,
                ),
            )
        )
    return rows
