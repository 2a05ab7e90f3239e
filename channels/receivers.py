"""What the outbox trigger cannot see: edits to buffers, the SKU map and channels.

Each of them can change a listed quantity without any stock moving, so each owes the
affected listings a push, in the transaction of the edit.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from channels.models import BufferRule, Channel, Listing
from channels.pipeline import outbox, workers


def on_buffer_rule_changed(sender: Any, instance: BufferRule, **kwargs: Any) -> None:
    listings = Listing.objects.filter(channel_id=instance.channel_id, is_active=True)
    if instance.listing_id is not None:
        listings = listings.filter(pk=instance.listing_id)
    elif instance.sku_id is not None:
        listings = listings.filter(sku_id=instance.sku_id)
    outbox.mark_listings_owed(listing_ids=listings.values_list("pk", flat=True))


def on_listing_saved(sender: Any, instance: Listing, **kwargs: Any) -> None:
    outbox.forget_unlisted()  # its SKU, or bundles' components, may be listed now
    if instance.is_active and instance.sku_id is not None:
        outbox.mark_listings_owed(listing_ids=[instance.pk])


def on_channel_saved(sender: Any, instance: Channel, created: bool, **kwargs: Any) -> None:
    if created:
        channel_id = instance.pk
        transaction.on_commit(lambda: workers.announce_push_queue(channel_id), robust=True)
    else:
        # Mode, threshold or locations may have changed: every listing is owed a push.
        outbox.mark_channel_owed(channel=instance)


def on_channel_locations_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"} and isinstance(instance, Channel):
        outbox.mark_channel_owed(channel=instance)


def on_bom_changed(sender: Any, bundle_ids: frozenset[int], **kwargs: Any) -> None:
    outbox.forget_unlisted()
    listings = Listing.objects.filter(sku_id__in=bundle_ids, is_active=True)
    outbox.mark_listings_owed(listing_ids=listings.values_list("pk", flat=True))
