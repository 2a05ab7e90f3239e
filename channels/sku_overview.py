"""Everything the SKU page shows about one SKU, in a number of queries that does not grow
with its ledger, its pushes or its incidents (only with the channels it is listed on).

Each listed quantity is explained by ``selectors.explain_listings``, the batch form of the
listing-explanation API's selector: the BOM arithmetic of a bundle, then each buffer step.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from bundles import selectors as bundle_selectors
from channels import selectors
from channels.buffers import Explanation
from channels.models import Channel, DeadLetter, Listing, OversellIncident, PushAttempt
from inventory.models import InventoryEvent, Location, MarketplaceStock, Sku, StockLevel

RECENT_EVENTS = 25
RECENT_PUSHES = 25
RECENT_INCIDENTS = 10


@dataclasses.dataclass(frozen=True)
class LocationRow:
    level: StockLevel
    # What the marketplace reports it holds there (FBA's states), if it is such a location.
    marketplace: MarketplaceStock | None


@dataclasses.dataclass(frozen=True)
class ListingRow:
    listing: Listing
    explanation: Explanation
    open_dead_letters: int

    @property
    def last_pushed_quantity(self) -> int | None:
        state = getattr(self.listing, "sync_state", None)
        return state.last_pushed_quantity if state is not None else None


@dataclasses.dataclass(frozen=True)
class SkuOverview:
    sku: Sku
    locations: list[LocationRow]
    on_hand: int
    available: int
    is_bundle: bool
    listings: list[ListingRow]
    # Channels the SKU has no listing on (offered for the calculator all the same).
    unlisted_channels: list[Channel]
    events: list[InventoryEvent]
    pushes: list[PushAttempt]
    incidents: list[OversellIncident]
    channels: list[Channel]


def sku_overview(*, sku: Sku, now: dt.datetime | None = None) -> SkuOverview:
    """The SKU's stock per location, each listing's quantity with its arithmetic, and its
    recent ledger events, pushes and oversell incidents."""
    now = now or timezone.now()
    levels = list(
        StockLevel.objects.filter(sku=sku).select_related("location").order_by("location__code")
    )
    # Only a marketplace-fulfilled location has the marketplace's own states to show.
    held_by_marketplace = [
        level.location_id
        for level in levels
        if level.location.kind == Location.Kind.MARKETPLACE_FULFILLED
    ]
    marketplace = (
        {
            row.location_id: row
            for row in MarketplaceStock.objects.filter(
                sku=sku, location_id__in=held_by_marketplace
            )
        }
        if held_by_marketplace
        else {}
    )
    locations = [LocationRow(level, marketplace.get(level.location_id)) for level in levels]
    listings = list(
        Listing.objects.filter(sku=sku)
        .select_related("channel", "sync_state", "sku")
        .annotate(
            open_dead_letters=Count(
                "dead_letters", filter=Q(dead_letters__status=DeadLetter.Status.OPEN)
            )
        )
        .order_by("channel__slug", "external_id")
    )
    listing_ids = [listing.pk for listing in listings]
    explanations = selectors.explain_listings(listings=listings, now=now)
    rows = [
        ListingRow(
            listing=listing,
            explanation=explanations[listing.pk],
            open_dead_letters=listing.open_dead_letters,
        )
        for listing in listings
    ]
    channels = list(Channel.objects.order_by("slug"))
    listed_on = {listing.channel_id for listing in listings}
    return SkuOverview(
        sku=sku,
        locations=locations,
        on_hand=sum(level.on_hand for level in levels),
        available=sum(level.available for level in levels),
        is_bundle=bool(bundle_selectors.bundle_ids_among(sku_ids=[sku.pk])),
        listings=rows,
        unlisted_channels=[channel for channel in channels if channel.pk not in listed_on],
        events=list(
            InventoryEvent.objects.filter(sku=sku)
            .select_related("location")
            .order_by("-created_at", "-id")[:RECENT_EVENTS]
        ),
        pushes=_recent_pushes(listing_ids),
        incidents=list(
            OversellIncident.objects.filter(sku=sku)
            .select_related("channel")
            .order_by("-created_at")[:RECENT_INCIDENTS]
        ),
        channels=channels,
    )


# Raw: the newest pushes of each listing from its (listing, -sent_at) index, then the
# newest of those; a plain ORDER BY over the listings would sort every push they ever had.
_RECENT_PUSH_IDS_SQL = """
SELECT newest.id
  FROM unnest(%(listing_ids)s::bigint[]) AS listing(id)
 CROSS JOIN LATERAL (
       SELECT attempt.id, attempt.sent_at
         FROM channels_pushattempt AS attempt
        WHERE attempt.listing_id = listing.id
        ORDER BY attempt.sent_at DESC
        LIMIT %(limit)s) AS newest
 ORDER BY newest.sent_at DESC, newest.id DESC
 LIMIT %(limit)s
"""


def _recent_pushes(listing_ids: list[int]) -> list[PushAttempt]:
    if not listing_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_RECENT_PUSH_IDS_SQL, {"listing_ids": listing_ids, "limit": RECENT_PUSHES})
        ids = [push_id for (push_id,) in cursor.fetchall()]
    return list(
        PushAttempt.objects.filter(pk__in=ids)
        .select_related("channel")
        .order_by("-sent_at", "-pk")
    )
