"""Reads about channels shared by the push pipeline, the dashboard and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

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
    return rules.ScopedRules.of(scoped_rule(rule, rule) for rule in buffer_rules)


RuleT = TypeVar("RuleT")


def scoped_rule(rule: BufferRule, value: RuleT) -> rules.Scoped[RuleT]:
    """``value`` standing for the rule, with the rule's scope and velocity guard's rise."""
    return rules.Scoped(
        rule.listing_id, rule.sku_id, value, rule.velocity_units, rule.velocity_only
    )


def buffer_rule_values(
    rule: BufferRule | None, *, velocity_units: int = 0
) -> BufferRuleValues | None:
    """The rule's numbers, detached from the model, with the velocity guard's rise for the
    listing's SKU (``ScopedRules.velocity_units``); None for no rule and no rise."""
    if rule is None:
        return BufferRuleValues(velocity_units=velocity_units) if velocity_units else None
    return BufferRuleValues(
        percent=rule.percent,
        fixed_units=rule.fixed_units,
        max_cap=rule.max_cap,
        cap_starts_at=rule.cap_starts_at,
        cap_ends_at=rule.cap_ends_at,
        velocity_units=velocity_units,
    )


def listing_buffer_values(*, listing: Listing) -> BufferRuleValues | None:
    """The numbers that shape the listing's quantity: its effective rule's and the velocity
    guard's rise for its SKU."""
    candidates = BufferRule.objects.filter(
        rules.candidate_rules(
            listing_ids=[listing.pk],
            sku_ids=[] if listing.sku_id is None else [listing.sku_id],
        ),
        channel_id=listing.channel_id,
    )
    scoped = _scoped(candidates)
    return buffer_rule_values(
        scoped.effective(listing_id=listing.pk, sku_id=listing.sku_id),
        velocity_units=scoped.velocity_units(sku_id=listing.sku_id),
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
    channel = listing.channel
    if listing.sku_id is None:
        return Explanation(
            steps=(Step("no SKU mapped: a mapping gap lists nothing", 0),), listed=0
        )
    location_ids = list(channel.locations.values_list("pk", flat=True))
    bom_steps: tuple[Step, ...] = ()
    if bundle_selectors.bundle_ids_among(sku_ids=[listing.sku_id]):
        bom = bundle_selectors.explain_bundle(bundle_id=listing.sku_id, location_ids=location_ids)
        bom_steps = tuple(Step(step.label, step.bundles) for step in bom.steps)
        ats = bom.available
    else:
        ats = available_to_sell(sku_id=listing.sku_id, location_ids=location_ids)
    explanation = explain_listed_quantity(
        ats=ats,
        rule=listing_buffer_values(listing=listing),
        out_of_stock_threshold=channel.out_of_stock_threshold,
        now=now or timezone.now(),
    )
    return Explanation(steps=bom_steps + explanation.steps, listed=explanation.listed)


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
                scoped.effective(listing_id=listing.pk, sku_id=listing.sku_id),
                velocity_units=scoped.velocity_units(sku_id=listing.sku_id),
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
            channel_id=rule.channel_id, sku__isnull=False, velocity_only=False
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
