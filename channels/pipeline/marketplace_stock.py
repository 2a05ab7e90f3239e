"""Stock a channel holds itself (Amazon FBA), read into the channel's marketplace locations.

The channel's count is the fact: only its fulfillable units become on hand there, through
the ledger (``inventory.services.record_marketplace_count``, source MARKETPLACE); the other
states are stored beside it for operators. Counts come from the channel's notifications
(ingest) and from a scheduled read that catches what a lost notification missed. Nothing
here ever writes to the channel: a listing it fulfils is never pushed (``push``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels.connectors.base import ChannelError
from channels.connectors.registry import connector_class_for, get_connector
from channels.connectors.types import Capability, MarketplaceStockCount
from channels.models import Channel, Listing, MarketplaceLocation
from channels.pipeline import enqueue
from inventory import services
from inventory.models import EventSource, Location

logger = logging.getLogger(__name__)

# The scheduled read asks for counts changed since its last read less this much: a count
# made while the last read ran is read again rather than missed (an old one changes nothing).
READ_OVERLAP_S = 120


def open_marketplace_location(*, channel: Channel, marketplace_id: str) -> MarketplaceLocation:
    """The channel's marketplace location for that region, created (with its
    marketplace-fulfilled ``Location``) the first time; never one the channel sells from."""
    with transaction.atomic():
        found = MarketplaceLocation.objects.filter(
            channel=channel, marketplace_id=marketplace_id
        ).first()
        if found is not None:
            return found
        location = Location.objects.create(
            code=f"{channel.slug}-{marketplace_id}".lower()[:64],
            name=f"{channel.name} ({marketplace_id}), held by the marketplace",
            kind=Location.Kind.MARKETPLACE_FULFILLED,
        )
        return MarketplaceLocation.objects.create(
            channel=channel, marketplace_id=marketplace_id, location=location
        )


def apply_counts(*, channel: Channel, counts: Sequence[MarketplaceStockCount], origin: str) -> int:
    """Record each count at the channel's marketplace location of its region; how many
    changed on hand. A count for a region without a location, or an item no listing of the
    channel maps to a SKU, is logged and skipped. ``origin`` says where the counts came
    from, for the ledger's reason."""
    locations = {
        place.marketplace_id: place.location_id
        for place in MarketplaceLocation.objects.filter(channel=channel)
    }
    changed = 0
    for count in counts:
        location_id = locations.get(count.marketplace_id)
        if location_id is None:
            logger.info(
                "%s: no marketplace location for %s; count of %s skipped",
                channel.slug,
                count.marketplace_id,
                count.external_sku,
            )
            continue
        sku_id = (
            Listing.objects.filter(channel=channel, sku__isnull=False)
            .filter(Q(external_id=count.external_sku) | Q(external_sku=count.external_sku))
            .order_by("-fulfilled_by_channel", "pk")
            .values_list("sku_id", flat=True)
            .first()
        )
        if sku_id is None:
            logger.info("%s: no mapped listing for %s", channel.slug, count.external_sku)
            continue
        event = services.record_marketplace_count(
            sku_id=sku_id,
            location_id=location_id,
            count=services.MarketplaceCount(
                fulfillable=count.fulfillable,
                counted_at=count.counted_at,
                inbound=count.inbound,
                reserved=count.reserved,
                researching=count.researching,
                unfulfillable=count.unfulfillable,
                future_supply=count.future_supply,
                details=dict(count.details),
            ),
            context=services.EventContext(
                idempotency_key=(
                    f"{channel.platform}:{channel.pk}:marketplace:{count.marketplace_id}:"
                    f"{count.external_sku}:{count.counted_at.isoformat()}"
                ),
                source=EventSource.MARKETPLACE,
                actor=channel.slug,
                external_reference=count.external_sku,
                reason=f"{origin}: {count.fulfillable} fulfillable",
            ),
        )
        changed += event is not None
    return changed


def read_marketplace_stock(*, channel_id: int) -> int:
    """Read the counts the channel changed since the last read (all of them the first
    time) into its marketplace locations; how many changed on hand."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or channel.mode == Channel.Mode.PAUSED:
        return 0
    connector = get_connector(channel)
    places = list(MarketplaceLocation.objects.filter(channel=channel))
    if not connector.has(Capability.MARKETPLACE_STOCK) or not places:
        return 0
    started = timezone.now()
    read_until = [place.counted_until for place in places]
    since = (
        None
        if any(until is None for until in read_until)
        else min(until for until in read_until if until is not None)
        - dt.timedelta(seconds=READ_OVERLAP_S)
    )
    try:
        counts = connector.read_marketplace_stock(since=since)
    except ChannelError as error:
        MarketplaceLocation.objects.filter(channel=channel).update(last_error=str(error)[:2000])
        raise
    changed = apply_counts(channel=channel, counts=counts, origin="scheduled stock read")
    MarketplaceLocation.objects.filter(channel=channel).update(
        counted_until=started, last_error=""
    )
    if changed:
        logger.info("%s: stock read changed %d marketplace counts", channel.slug, changed)
    return changed


def wake_marketplace_stock_reads() -> int:
    """Queue a stock read for every unpaused channel with a marketplace location."""
    channel_ids = sorted(
        {
            place.channel_id
            for place in MarketplaceLocation.objects.select_related("channel").exclude(
                channel__mode=Channel.Mode.PAUSED
            )
            if Capability.MARKETPLACE_STOCK
            in connector_class_for(place.channel.platform).capabilities
        }
    )
    for channel_id in channel_ids:
        enqueue.enqueue_marketplace_stock_read(channel_id=channel_id)
    return len(channel_ids)
