"""Measured figures the safety-stock calculator and the alerts are built on.

Propagation latency per channel is the scorecard's latency to "applied" (``channels.kpis``:
from the originating change to the write applied on the channel); sales velocity comes from
the ledger. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from channels import kpis
from inventory.models import EventKind

# The pushes a latency figure is taken over: the scorecard's window (``channels.kpis``).
LATENCY_WINDOW = kpis.LATENCY_WINDOW

# The newest pushes a latency figure is taken over, at most: a p95 of 5,000 pushes is as
# good an estimate as one of a day's 40,000, and reading them newest first from the
# (channel, -sent_at) index costs the same however busy the channel was.
LATENCY_SAMPLE = 5_000

# Raw: percentile_cont and LATERAL have no ORM form. The scorecard's "to applied" stage
# (``kpis.sync_latency``: applied pushes' latency_ms) over each channel's newest pushes.
_APPLIED_P95_SQL = """
SELECT channel.id, figures.p95, figures.pushes
  FROM channels_channel AS channel
 CROSS JOIN LATERAL (
       SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY newest.latency_ms) AS p95,
              count(*) AS pushes
         FROM (SELECT attempt.latency_ms
                 FROM channels_pushattempt AS attempt
                WHERE attempt.channel_id = channel.id AND attempt.sent_at >= %(start)s
                  AND attempt.outcome = 'applied' AND attempt.latency_ms IS NOT NULL
                ORDER BY attempt.sent_at DESC
                LIMIT %(sample)s) AS newest
       ) AS figures
 WHERE (%(all_channels)s OR channel.id = ANY(%(channel_ids)s)) AND figures.pushes > 0
"""


@dataclass(frozen=True)
class ChannelLatency:
    """A channel's measured propagation latency: the p95 from the originating change to the
    write applied on the channel (the scorecard's "to applied"), over ``pushes`` pushes."""

    channel_id: int
    p95_ms: float
    pushes: int


def latency_p95_by_channel(
    *, channel_ids: list[int] | None = None, now: dt.datetime | None = None
) -> dict[int, ChannelLatency]:
    """Each channel's p95 propagation latency to "applied" over its newest
    ``LATENCY_SAMPLE`` pushes of the last ``LATENCY_WINDOW``, in one query; a channel with
    no such push is left out."""
    end = now or timezone.now()
    params: dict[str, Any] = {
        "start": end - LATENCY_WINDOW,
        "sample": LATENCY_SAMPLE,
        "all_channels": channel_ids is None,
        "channel_ids": channel_ids or [],
    }
    with connection.cursor() as cursor:
        cursor.execute(_APPLIED_P95_SQL, params)
        return {
            channel_id: ChannelLatency(
                channel_id=channel_id, p95_ms=round(float(p95), 1), pushes=pushes
            )
            for channel_id, p95, pushes in cursor.fetchall()
        }


# Sales: the units an order or a confirmed reservation committed.
SALE_KINDS = (EventKind.ORDER_COMMITTED, EventKind.RESERVATION_CONFIRMED)
VELOCITY_WINDOW = dt.timedelta(minutes=15)
VELOCITY_LOOKBACK = dt.timedelta(days=28)

# Raw: windows of a fixed length aligned on the epoch (date_bin). The (sku, created_at)
# index bounds the rows read to one SKU's look-back.
_PEAK_WINDOW_SQL = """
SELECT date_bin(%(window)s, created_at, TIMESTAMPTZ '2000-01-01') AS window_start,
       sum(delta_committed) AS units
  FROM inventory_inventoryevent
 WHERE sku_id = %(sku_id)s AND created_at >= %(since)s AND kind = ANY(%(kinds)s)
 GROUP BY window_start
 ORDER BY units DESC, window_start DESC
 LIMIT 1
"""


@dataclass(frozen=True)
class PeakVelocity:
    """The most units of one SKU sold in any window of ``window`` in the look-back."""

    units: int
    window: dt.timedelta
    window_start: dt.datetime | None
    lookback: dt.timedelta

    @property
    def units_per_s(self) -> float:
        return self.units / self.window.total_seconds()


def peak_sales_velocity(
    *,
    sku_id: int,
    now: dt.datetime | None = None,
    window: dt.timedelta = VELOCITY_WINDOW,
    lookback: dt.timedelta = VELOCITY_LOOKBACK,
) -> PeakVelocity:
    """The SKU's busiest window of sales in the ledger over ``lookback``, in one query
    (every channel's sales together: any of them empties the stock another still lists)."""
    since = (now or timezone.now()) - lookback
    with connection.cursor() as cursor:
        params: dict[str, Any] = {
            "window": window,
            "sku_id": sku_id,
            "since": since,
            "kinds": list(SALE_KINDS),
        }
        cursor.execute(_PEAK_WINDOW_SQL, params)
        row = cursor.fetchone()
    if row is None or row[1] is None or row[1] <= 0:
        return PeakVelocity(units=0, window=window, window_start=None, lookback=lookback)
    window_start, units = row
    return PeakVelocity(
        units=int(units), window=window, window_start=window_start, lookback=lookback
    )
