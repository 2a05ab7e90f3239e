"""The transactional outbox: which listings owe their channel a push, and waking pushers.

Stock changes mark listings owed through a database trigger (migration 0003) in the same
transaction; ``mark_listings_owed`` does the same for what the trigger cannot see (a buffer
rule, a listing or a channel's locations changed). Redis only wakes the pushers: the owed
rows live in PostgreSQL, and ``sweep`` finds them again whatever the broker lost.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from channels.models import Channel, PendingPush

_MARK_OWED_SQL = """
INSERT INTO channels_pendingpush AS pending (listing_id, channel_id, generation, attempts, errors)
SELECT listing.id, listing.channel_id, 1, 0, '[]'::jsonb
  FROM channels_listing AS listing
 WHERE listing.id = ANY(%(listing_ids)s) AND listing.is_active
 ORDER BY listing.id
ON CONFLICT (listing_id) DO UPDATE
   SET generation = pending.generation + 1, last_change_at = statement_timestamp()
RETURNING channel_id
"""


def mark_listings_owed(*, listing_ids: Iterable[int]) -> None:
    """Owe a push for each listing; pushers are woken when the transaction commits."""
    ids = sorted(set(listing_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(_MARK_OWED_SQL, {"listing_ids": ids})
        channel_ids = {row[0] for row in cursor.fetchall()}
    transaction.on_commit(lambda: wake_pushers(channel_ids=channel_ids))


def mark_channel_owed(*, channel: Channel) -> None:
    """Owe a push for every active listing of the channel (a full sync of it)."""
    mark_listings_owed(
        listing_ids=channel.listings.filter(is_active=True).values_list("pk", flat=True)
    )


def channels_owing_for_skus(sku_ids: Iterable[int]) -> set[int]:
    return set(
        PendingPush.objects.filter(listing__sku_id__in=list(sku_ids))
        .values_list("channel_id", flat=True)
        .distinct()
    )


def wake_pushers_for_skus(*, sku_ids: Iterable[int]) -> None:
    wake_pushers(channel_ids=channels_owing_for_skus(sku_ids))


def wake_pushers(*, channel_ids: Iterable[int]) -> None:
    from channels import tasks

    if ids := sorted(set(channel_ids)):
        tasks.wake_pushers(channel_ids=ids)


def on_stock_changed(sender: object, *, sku_ids: frozenset[int], **kwargs: object) -> None:
    transaction.on_commit(lambda: wake_pushers_for_skus(sku_ids=sku_ids))
