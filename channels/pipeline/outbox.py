"""The transactional outbox: which listings owe their channel a push, and waking pushers.

Stock changes mark listings owed through a database trigger (migration 0003) in the same
transaction; ``mark_listings_owed`` does the same for what the trigger cannot see (a buffer
rule, a listing or a channel's locations changed). Redis only wakes the pushers: the owed
rows live in PostgreSQL, and ``sweep`` finds them again whatever the broker lost.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterable, Iterator

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Now

from channels import rules
from channels.models import Channel, PendingPush
from channels.pipeline import enqueue
from nventory import prepared_sql

logger = logging.getLogger(__name__)

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
    # Best effort: the rows are the record, and the sweep wakes what a lost wake-up left.
    transaction.on_commit(lambda: wake_pushers(channel_ids=channel_ids), robust=True)


def mark_channel_owed(*, channel: Channel) -> None:
    """Owe a push for every active listing of the channel (a full sync of it)."""
    mark_listings_owed(
        listing_ids=channel.listings.filter(is_active=True).values_list("pk", flat=True)
    )


# For each changed SKU: the channels with a push owed for a listing it affects (its own
# or a bundle's containing it: channels.rules), and whether it affects any listing at all.
_OWING_FOR_SKUS_SQL = f"""
SELECT changed.sku_id,
       ARRAY(SELECT DISTINCT pending.channel_id
               FROM channels_listing AS listing
               JOIN channels_pendingpush AS pending ON pending.listing_id = listing.id
              WHERE {rules.affected_by_sku_sql(listing="listing", sku_id="changed.sku_id")}),
       EXISTS (SELECT 1 FROM channels_listing AS listing
                WHERE {rules.affected_by_sku_sql(listing="listing", sku_id="changed.sku_id")})
  FROM unnest(%(sku_ids)s::bigint[]) AS changed(sku_id)
"""

# SKUs found listed nowhere, remembered by this process for a few seconds: a stock change
# of an unlisted SKU (most of a catalog, and every sale of the hot-SKU bench) then costs no
# query at all. A listing created meanwhile is owed and woken by its own save; a stock
# change in that window waits for the outbox sweep at worst.
UNLISTED_MEMORY_S = 5.0
_unlisted_until: dict[int, float] = {}


def channels_owing_for_skus(sku_ids: Iterable[int]) -> set[int]:
    now = time.monotonic()
    candidates = sorted(sku for sku in set(sku_ids) if _unlisted_until.get(sku, 0.0) <= now)
    if not candidates:
        return set()
    rows = prepared_sql.fetch(_OWING_FOR_SKUS_SQL, {"sku_ids": candidates})
    owing: set[int] = set()
    for sku_id, channel_ids, listed in rows:
        owing.update(channel_ids or ())
        if listed:
            _unlisted_until.pop(sku_id, None)
        else:
            _unlisted_until[sku_id] = now + UNLISTED_MEMORY_S
    return owing


def forget_unlisted(sku_ids: Iterable[int] | None = None) -> None:
    """A listing or BOM changed here: look these SKUs (None: all) up again next time."""
    if sku_ids is None:
        _unlisted_until.clear()
    else:
        for sku_id in sku_ids:
            _unlisted_until.pop(sku_id, None)


def wake_pushers_for_skus(*, sku_ids: Iterable[int]) -> None:
    if owing := channels_owing_for_skus(sku_ids):
        wake_pushers(channel_ids=owing)


def wake_pushers(*, channel_ids: Iterable[int]) -> None:
    enqueue.wake_pushers(channel_ids=channel_ids)


def on_stock_changed(*, sku_ids: frozenset[int]) -> None:
    """Wake the pushers these SKUs owe, once the stock change commits (registered with
    ``inventory.services.register_stock_listener`` by ``ChannelsConfig.ready``)."""
    # Best effort, as above: a stock change that committed must not answer an error.
    transaction.on_commit(lambda: _wake_or_gather(sku_ids), robust=True)


_gathered_sku_ids: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar(
    "gathered_sku_ids", default=None
)


@contextlib.contextmanager
def wakes_gathered() -> Iterator[None]:
    """Stock changes committed within wake their pushers once, at the end, together.

    For a worker applying a batch of webhooks one transaction each: one query of the
    channels owed and one Redis round trip for the batch instead of one of each per
    webhook, at the cost of the batch's few milliseconds (within the pushers' coalescing
    window, which would hold the push back anyway).
    """
    gathered: set[int] = set()
    token = _gathered_sku_ids.set(gathered)
    try:
        yield
    finally:
        _gathered_sku_ids.reset(token)
        if gathered:
            # Best effort, as each on-commit wake-up is: the sweep wakes what this missed.
            try:
                wake_pushers_for_skus(sku_ids=gathered)
            except Exception:
                logger.exception("Waking the pushers of SKUs %s failed", sorted(gathered))


def _wake_or_gather(sku_ids: frozenset[int]) -> None:
    gathered = _gathered_sku_ids.get()
    if gathered is None:
        wake_pushers_for_skus(sku_ids=sku_ids)
    else:
        gathered.update(sku_ids)


def sweep() -> int:
    """Wake the pusher of every channel with a due push nobody holds; how many woke.

    The safety net under on-commit wake-ups: a lost broker message, a worker killed
    mid-push (its claim lapses) or a backoff that has run out all end up here.
    """
    channel_ids = set(
        PendingPush.objects.filter(not_before__lte=Now())
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now()))
        .values_list("channel_id", flat=True)
        .distinct()
    )
    wake_pushers(channel_ids=channel_ids)
    return len(channel_ids)
