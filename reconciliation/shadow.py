"""The daily shadow-mode comparison: would this channel be safe to switch to active?

Three answers per shadow channel and day, stored in the run's ``figures``:

- ``end_of_day``: every listing read now and compared with the master (the poll's
  comparison, never corrected): the article's 1% rule, ``within_one_percent``.
- ``during_day``: the shadow log (``PushAttempt`` rows with outcome ``shadow``): what
  would have been pushed next to what the channel showed at that moment.
- ``replay``: would the channel have oversold, and on which orders? The day's orders
  placed elsewhere (every ``order_committed`` event not from this channel) on SKUs the
  channel lists are replayed in ledger order. For each one the channel's ATS right after
  it is rebuilt from the ledger (each location's latest ``*_after`` figures), and what the
  channel showed then is the shadow log's first reading of that listing at or after the
  order (the order owed the push that logged it), else its last reading before. Where the
  channel showed more than the stock left, a buyer there could have bought units that no
  longer existed: the order is listed with the exposed units, next to what nventory would
  have pushed instead. The channel's own orders that did oversell (its oversell incidents
  of the day) are listed as well.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from typing import Any

from django.db import connection
from django.utils import timezone

from channels.models import Channel, Listing, OversellIncident, PushAttempt
from inventory.models import EventKind, EventSource, InventoryEvent
from reconciliation import services
from reconciliation.models import ReconciliationRun

ONE_PERCENT = 1.0


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    return start, start + dt.timedelta(days=1)


def compare_shadow_channel(
    *,
    channel_id: int,
    day: dt.date,
    force: bool = False,
    progress: services.Progress | None = None,
) -> ReconciliationRun | None:
    """Compare one shadow channel for one day; a done comparison of that day is kept.

    Reads the channel, writes nothing to it. None if the channel is not in shadow mode or
    its reconciliation is locked.
    """
    channel = Channel.objects.filter(pk=channel_id, mode=Channel.Mode.SHADOW).first()
    if channel is None:
        return None
    done = ReconciliationRun.objects.filter(
        channel=channel,
        kind=ReconciliationRun.Kind.SHADOW_COMPARE,
        period_date=day,
        status=ReconciliationRun.Status.DONE,
    ).first()
    if done is not None and not force:
        return done
    run = services.reconcile_channel(
        channel_id=channel.pk,
        kind=ReconciliationRun.Kind.SHADOW_COMPARE,
        period_date=day,
        progress=progress,
    )
    if run is None or run.status != ReconciliationRun.Status.DONE:
        return run
    judged = run.listings_checked - run.skipped_in_flight
    mismatch_percent = 100.0 * run.found / judged if judged else 0.0
    run.figures = {
        "end_of_day": {
            "listings_compared": judged,
            "mismatched": run.found,
            "match_rate": round(1 - mismatch_percent / 100, 5),
            "within_one_percent": mismatch_percent <= ONE_PERCENT,
        },
        "during_day": shadow_log_match(channel=channel, day=day),
        "replay": replay_day(channel=channel, day=day),
    }
    run.save(update_fields=["figures"])
    return run


def compare_shadow_channels(*, day: dt.date, force: bool = False) -> list[ReconciliationRun]:
    """The daily comparison of every shadow channel."""
    runs = [
        compare_shadow_channel(channel_id=channel_id, day=day, force=force)
        for channel_id in Channel.objects.filter(mode=Channel.Mode.SHADOW)
        .order_by("pk")
        .values_list("pk", flat=True)
    ]
    return [run for run in runs if run is not None]


def shadow_log_match(*, channel: Channel, day: dt.date) -> dict[str, Any]:
    """Match rate of the day's shadow log: would-be pushes equal to the channel's figure."""
    start, end = day_bounds(day)
    rows = PushAttempt.objects.filter(
        channel=channel,
        outcome=PushAttempt.Outcome.SHADOW,
        sent_at__gte=start,
        sent_at__lt=end,
        channel_quantity__isnull=False,
    ).values_list("target_quantity", "channel_quantity")
    compared = matched = 0
    for target, shown in rows:
        compared += 1
        matched += target == shown
    return {
        "compared": compared,
        "matched": matched,
        "match_rate": round(matched / compared, 5) if compared else None,
    }


_LEVELS_BEFORE_SQL = """
SELECT DISTINCT ON (sku_id, location_id)
       sku_id, location_id, on_hand_after - committed_after - reserved_after
  FROM inventory_inventoryevent
 WHERE sku_id = ANY(%(sku_ids)s) AND location_id = ANY(%(location_ids)s)
   AND created_at < %(start)s
 ORDER BY sku_id, location_id, id DESC
"""


def replay_day(*, channel: Channel, day: dt.date) -> dict[str, Any]:
    """Orders elsewhere that left this channel showing units that no longer existed."""
    start, end = day_bounds(day)
    location_ids = list(channel.locations.values_list("pk", flat=True))
    listing_by_sku: dict[int, list[int]] = defaultdict(list)
    for listing_id, sku_id in Listing.objects.filter(
        channel=channel, is_active=True, sku__isnull=False
    ).values_list("pk", "sku_id"):
        listing_by_sku[sku_id].append(listing_id)
    sku_ids = list(listing_by_sku)
    available: dict[tuple[int, int], int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            _LEVELS_BEFORE_SQL, {"sku_ids": sku_ids, "location_ids": location_ids, "start": start}
        )
        for sku_id, location_id, figure in cursor.fetchall():
            available[(sku_id, location_id)] = figure
    readings = _shadow_readings(channel=channel, start=start, end=end)
    exposures: list[dict[str, Any]] = []
    orders_elsewhere = 0
    events = (
        InventoryEvent.objects.filter(
            sku_id__in=sku_ids, location_id__in=location_ids, created_at__gte=start
        )
        .filter(created_at__lt=end)
        .select_related("sku")
        .order_by("id")
    )
    for event in events.iterator(chunk_size=2000):
        available[(event.sku_id, event.location_id)] = event.available_after
        is_order_elsewhere = event.kind == EventKind.ORDER_COMMITTED and not (
            event.source == EventSource.CHANNEL and event.actor == channel.slug
        )
        if not is_order_elsewhere:
            continue
        orders_elsewhere += 1
        ats = max(
            0,
            sum(available.get((event.sku_id, location_id), 0) for location_id in location_ids),
        )
        for listing_id in listing_by_sku[event.sku_id]:
            reading = _reading_at(readings.get(listing_id, []), event.created_at)
            if reading is None or reading[1] is None or reading[1] <= ats:
                continue
            exposures.append(
                {
                    "order": event.external_reference or event.idempotency_key,
                    "from": event.actor or event.source,
                    "sku": event.sku.code,
                    "listing_id": listing_id,
                    "at": event.created_at.isoformat(),
                    "available_after": ats,
                    "channel_showed": reading[1],
                    "would_have_pushed": reading[0],
                    "exposed_units": reading[1] - ats,
                }
            )
    own_oversells = [
        {"order": incident.order_reference, "sku": incident.sku.code, "units": incident.shortfall}
        for incident in OversellIncident.objects.filter(
            channel=channel, created_at__gte=start, created_at__lt=end
        ).select_related("sku")
    ]
    return {
        "orders_elsewhere": orders_elsewhere,
        "would_have_oversold": bool(exposures or own_oversells),
        "exposed_orders": exposures,
        "own_oversells": own_oversells,
    }


def _shadow_readings(
    *, channel: Channel, start: dt.datetime, end: dt.datetime
) -> dict[int, list[tuple[dt.datetime, int, int | None]]]:
    """The day's shadow log per listing, in time order: (when, would push, channel showed)."""
    readings: dict[int, list[tuple[dt.datetime, int, int | None]]] = defaultdict(list)
    for listing_id, sent_at, target, shown in (
        PushAttempt.objects.filter(
            channel=channel,
            outcome=PushAttempt.Outcome.SHADOW,
            sent_at__gte=start,
            sent_at__lt=end,
        )
        .order_by("sent_at", "pk")
        .values_list("listing_id", "sent_at", "target_quantity", "channel_quantity")
    ):
        readings[listing_id].append((sent_at, target, shown))
    return readings


def _reading_at(
    readings: list[tuple[dt.datetime, int, int | None]], moment: dt.datetime
) -> tuple[int, int | None] | None:
    if not readings:
        return None
    index = bisect.bisect_left([reading[0] for reading in readings], moment)
    chosen = readings[index] if index < len(readings) else readings[-1]
    return chosen[1], chosen[2]
