"""Sync-health figures of the channels, each per channel and overall, for the console, the
metrics endpoint and the KPI API. Selectors: each reads, and writes nothing but the push
attempts' roll-up that its reading of the rollup needs (``roll_up_pushes``).

The figures whose data live in reconciliation (accuracy at the last poll, drift per run) are
added by ``reconciliation.scorecard``, which builds the whole scorecard on these.

Targets and colours (``Status``): green meets the target, amber misses it, red crosses the
alert line; grey has nothing to measure yet (a KPI with no data is ``None``, never 0).

The push figures are read from ``PushRollup`` (``RollupWindow``), the units held back from
``BufferSnapshot``: what a page reads is bounded by its window, not by the history behind it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from channels import rules
from channels.models import (
    BufferSnapshot,
    Channel,
    ChannelBreaker,
    ChannelOperation,
    DeadLetter,
    PendingPush,
    PushAttempt,
    SubmittedWrite,
)

# The window the latency the safety-stock calculator and alerts use is measured over.
LATENCY_WINDOW = dt.timedelta(hours=24)
LATENCY_TARGET_MS = 30_000.0
LATENCY_ALERT_MS = 60_000.0


class Status(StrEnum):
    """A KPI's colour."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    GREY = "grey"


def channels_in_console_order() -> QuerySet[Channel]:
    """Every channel, by name: the order the console lists them in."""
    return Channel.objects.order_by("name", "id")


# ---------------------------------------------------------------------------------------
# Sync latency
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles over ``samples`` pushes, in milliseconds (``None``: no sample)."""

    samples: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def none(cls) -> Percentiles:
        return cls(samples=0, p50_ms=None, p95_ms=None, p99_ms=None)


@dataclass(frozen=True)
class SyncLatency:
    """How long a stock change took to reach a channel.

    ``to_acknowledged``: from the originating change to the channel accepting the write (a
    synchronous write is applied when accepted; an asynchronous one, a feed or a job, is
    accepted first). ``to_applied``: from the change to the write being applied on the
    channel (for a synchronous platform the same pushes as ``to_acknowledged``).
    """

    to_acknowledged: Percentiles
    to_applied: Percentiles

    @property
    def status(self) -> Status:
        """Judged on the p95 to "applied": what a buyer sees. Target < 30 s, alert > 60 s."""
        return latency_status(self.to_applied.p95_ms)


def latency_status(p95_ms: float | None) -> Status:
    """Green under the 30 s target, amber up to the 60 s alert line, red beyond."""
    if p95_ms is None:
        return Status.GREY
    if p95_ms < LATENCY_TARGET_MS:
        return Status.GREEN
    if p95_ms <= LATENCY_ALERT_MS:
        return Status.AMBER
    return Status.RED


# Latency histograms: a push's latency is filed in a bucket of the rollup
# (``PushRollup``, kept by the trigger of migration 0037, which defines the buckets in SQL as
# ``channels_latency_bucket``): eight per doubling from the 30 s target, so the target and
# the 60 s alert line are bucket edges. Read back, each latency stands at the geometric
# middle of its bucket, so a percentile is within half a bucket (about 4.4 %) of the exact
# one, and a latency under 30 s (or over 60 s) is still under (over) it.
LATENCY_BUCKET_ORIGIN_MS = LATENCY_TARGET_MS
LATENCY_BUCKETS_PER_DOUBLING = 8
# How far a percentile read from the histograms may be from the exact one, relatively.
LATENCY_PERCENTILE_PRECISION = 2 ** (1 / (2 * LATENCY_BUCKETS_PER_DOUBLING)) - 1


def latency_bucket_bounds(bucket: int) -> tuple[float, float]:
    """The latencies (ms) a histogram bucket holds: from the first, up to the second."""
    return (
        LATENCY_BUCKET_ORIGIN_MS * 2 ** (bucket / LATENCY_BUCKETS_PER_DOUBLING),
        LATENCY_BUCKET_ORIGIN_MS * 2 ** ((bucket + 1) / LATENCY_BUCKETS_PER_DOUBLING),
    )


def histogram_percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile (0..1) of the latencies a histogram counts, as
    PostgreSQL's ``percentile_cont`` works it out (between the values at ranks either side
    of ``fraction * (n - 1)``), each value standing at the geometric middle of its bucket."""
    total = sum(histogram.values())
    if not total:
        return None
    position = fraction * (total - 1)
    below = int(position)
    low_value = _value_at_rank(histogram, below)
    if position == below:
        return low_value
    high_value = _value_at_rank(histogram, below + 1)
    return low_value + (high_value - low_value) * (position - below)


def _value_at_rank(histogram: Mapping[int, int], rank: int) -> float:
    before = 0
    for bucket in sorted(histogram):
        before += histogram[bucket]
        if rank < before:
            low, high = latency_bucket_bounds(bucket)
            return (low * high) ** 0.5
    low, high = latency_bucket_bounds(max(histogram))
    return (low * high) ** 0.5


def _percentiles(histogram: dict[int, int]) -> Percentiles:
    samples = sum(histogram.values())
    if not samples:
        return Percentiles.none()
    return Percentiles(
        samples=samples,
        p50_ms=_ms(histogram_percentile(histogram, 0.5)),
        p95_ms=_ms(histogram_percentile(histogram, 0.95)),
        p99_ms=_ms(histogram_percentile(histogram, 0.99)),
    )


@dataclass(frozen=True)
class RollupWindow:
    """The rollup rows a window ``[start, end)`` is read from: whole quarter hours from
    the quarter rows, the minutes before and after them from the minute rows. A window is
    counted in whole minutes, from the start of the minute it starts in; at most 28 minute
    rows and one quarter row per quarter hour per channel, however busy the channels."""

    start: dt.datetime
    end: dt.datetime

    @property
    def params(self) -> dict[str, Any]:
        minute_start = _floor(self.start, MINUTE)
        quarter_start = _ceil(minute_start, QUARTER)
        quarter_end = _floor(self.end, QUARTER)
        if quarter_end <= quarter_start:
            quarter_start = quarter_end = minute_start
        return {
            "minute_start": minute_start,
            "quarter_start": quarter_start,
            "quarter_end": quarter_end,
            "end": self.end,
        }

    # The rows of the window, for ``rollup`` (a PushRollup alias).
    CONDITION = """
        ((rollup.span_s = 900
          AND rollup.start >= %(quarter_start)s AND rollup.start < %(quarter_end)s)
         OR (rollup.span_s = 60
             AND rollup.start >= %(minute_start)s AND rollup.start < %(end)s
             AND NOT (rollup.start >= %(quarter_start)s AND rollup.start < %(quarter_end)s)))
    """


MINUTE = dt.timedelta(minutes=1)
QUARTER = dt.timedelta(minutes=15)
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    return moment - (moment - _EPOCH) % step


def _ceil(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


# Raw SQL: the histograms' buckets summed per stage and channel, and per stage overall
# (GROUPING SETS), over the window's rollup rows; jsonb_each has no ORM form.
_LATENCY_SQL = f"""
SELECT histogram.stage, rollup.channel_id, histogram.bucket::integer,
       sum(histogram.pushes::bigint)
  FROM channels_pushrollup rollup
 CROSS JOIN LATERAL (
       SELECT 'acknowledged' AS stage, key AS bucket, value AS pushes
         FROM jsonb_each_text(rollup.acknowledged_ms)
       UNION ALL
       SELECT 'applied', key, value FROM jsonb_each_text(rollup.applied_ms)) histogram
 WHERE {RollupWindow.CONDITION}
   AND (%(all_channels)s OR rollup.channel_id = ANY(%(channel_ids)s))
 GROUP BY GROUPING SETS ((histogram.stage, rollup.channel_id, histogram.bucket),
                         (histogram.stage, histogram.bucket))
"""


def roll_up_pushes() -> None:
    """Add the push attempts recorded since the last roll-up to the rollup (migration
    0043): every reader of the rollup calls it first, so the console's figures include the
    push that has just been acknowledged, and a beat task every few seconds keeps the
    backlog short. Safe at the same time as another: each attempt is taken once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT channels_roll_up_pushes()")


def sync_latency(
    *, start: dt.datetime, end: dt.datetime, channel_ids: Iterable[int] | None = None
) -> dict[int | None, SyncLatency]:
    """Latency percentiles of the pushes acknowledged in ``[start, end)`` (whole minutes,
    ``RollupWindow``), from the rollup's histograms, by channel id, and overall under the
    key ``None``; the roll-up and one query. A channel with no push in the window is absent (use
    ``.get(id)`` and ``Percentiles.none()``)."""
    roll_up_pushes()
    return _sync_latency(start=start, end=end, channel_ids=channel_ids)


def _sync_latency(
    *, start: dt.datetime, end: dt.datetime, channel_ids: Iterable[int] | None = None
) -> dict[int | None, SyncLatency]:
    """``sync_latency`` over the rollup as it stands (rolled up by the caller)."""
    ids = None if channel_ids is None else list(channel_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            _LATENCY_SQL,
            {
                **RollupWindow(start=start, end=end).params,
                "all_channels": ids is None,
                "channel_ids": ids or [],
            },
        )
        rows = cursor.fetchall()
    histograms: dict[int | None, dict[str, dict[int, int]]] = {None: {}}
    for stage, channel_id, bucket, pushes in rows:
        histograms.setdefault(channel_id, {}).setdefault(stage, {})[bucket] = int(pushes)
    return {
        channel_id: SyncLatency(
            to_acknowledged=_percentiles(by_stage.get("acknowledged", {})),
            to_applied=_percentiles(by_stage.get("applied", {})),
        )
        for channel_id, by_stage in histograms.items()
    }


def channel_sync_latency(
    *, channel_id: int, window: dt.timedelta = LATENCY_WINDOW, now: dt.datetime | None = None
) -> SyncLatency:
    """One channel's measured propagation latency over the last ``window`` (24 h by
    default): ``.to_applied.p95_ms`` is the figure a safety buffer must cover. ``None``
    percentiles when the channel acknowledged no push in the window. The roll-up and one
    query."""
    end = now or timezone.now()
    figures = sync_latency(start=end - window, end=end, channel_ids=[channel_id])
    return figures.get(
        channel_id,
        SyncLatency(to_acknowledged=Percentiles.none(), to_applied=Percentiles.none()),
    )


@dataclass(frozen=True)
class LatencyPoint:
    """The p95 latency to "applied" of the pushes acknowledged in one time bucket."""

    bucket_start: dt.datetime
    samples: int
    p95_ms: float


# Raw SQL: date_bin of each rollup row of the span to its chart bucket. The rows'
# histograms are summed here in Python: a few hundred small dicts cost less than the tens
# of thousands of (bucket, count) rows jsonb_each would send.
_LATENCY_SERIES_SQL = """
SELECT rollup.channel_id,
       date_bin(make_interval(secs => %(bucket_s)s), rollup.start, %(origin)s) AS bucket_start,
       rollup.applied_ms
  FROM channels_pushrollup rollup
 WHERE rollup.span_s = %(span_s)s AND rollup.start >= %(origin)s AND rollup.start < %(end)s
   AND rollup.applied_ms <> '{}'::jsonb
   AND (%(all_channels)s OR rollup.channel_id = ANY(%(channel_ids)s))
"""


def latency_series(
    *,
    start: dt.datetime,
    end: dt.datetime,
    bucket: dt.timedelta,
    channel_ids: Iterable[int] | None = None,
) -> dict[int, list[LatencyPoint]]:
    """p95 latency to "applied" per channel per time bucket (buckets with no push are
    absent), for the latency chart and the channels page's sparklines. The roll-up
    (``roll_up_pushes``) and one query.

    ``bucket`` is whole minutes; the buckets start on the minute (on the quarter hour when
    ``bucket`` is whole quarter hours) at or before ``start``, and are read from the rollup
    rows of that span: 96 quarter rows a channel for a day in quarter-hour buckets.
    """
    span = QUARTER if bucket % QUARTER == dt.timedelta(0) else MINUTE
    origin = _floor(start, span)
    roll_up_pushes()
    with connection.cursor() as cursor:
        cursor.execute(
            _LATENCY_SERIES_SQL,
            {
                "origin": origin,
                "end": end,
                "span_s": int(span.total_seconds()),
                "bucket_s": max(int(bucket.total_seconds()) // 60, 1) * 60,
                "all_channels": channel_ids is None,
                "channel_ids": list(channel_ids or []),
            },
        )
        rows = cursor.fetchall()
    histograms: dict[int, dict[dt.datetime, Counter[int]]] = {}
    for channel_id, bucket_start, applied_ms in rows:
        histogram = histograms.setdefault(channel_id, {}).setdefault(bucket_start, Counter())
        # Django has psycopg hand jsonb over as text (its JSONField decodes it).
        for latency_bucket, pushes in json.loads(applied_ms).items():
            histogram[int(latency_bucket)] += pushes
    series: dict[int, list[LatencyPoint]] = {}
    for channel_id in sorted(histograms):
        for bucket_start, histogram in sorted(histograms[channel_id].items()):
            p95_ms = histogram_percentile(histogram, 0.95)
            if p95_ms is not None:
                series.setdefault(channel_id, []).append(
                    LatencyPoint(
                        bucket_start=bucket_start,
                        samples=histogram.total(),
                        p95_ms=round(p95_ms, 1),
                    )
                )
    return series


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


# ---------------------------------------------------------------------------------------
# The other KPIs of the channels: counts in a window, by channel and overall
# ---------------------------------------------------------------------------------------
KPI_WINDOW = dt.timedelta(hours=24)
# The longest window the KPIs are asked for (the KPI API's ``window_h``): the push rollup
# keeps a day more than this.
LONGEST_KPI_WINDOW = dt.timedelta(days=31)
ERROR_RATE_TARGET = 0.001
ERROR_RATE_ALERT = 0.01
UPTIME_TARGET = 0.999
UPTIME_ALERT = 0.99
WEBHOOK_HEALTH_TARGET = 0.999
WEBHOOK_HEALTH_ALERT = 0.99
# A receipt still unprocessed this long after it arrived counts against the receiver (the
# sweep picks receipts up after 30 s).
RECEIPT_OVERDUE = dt.timedelta(seconds=60)


def rate_status(value: float | None, *, target: float, alert: float) -> Status:
    """For a rate that should stay low: green under ``target``, red at ``alert`` or more."""
    if value is None:
        return Status.GREY
    if value < target:
        return Status.GREEN
    return Status.AMBER if value < alert else Status.RED


def share_status(value: float | None, *, target: float, alert: float) -> Status:
    """For a share that should stay high: green at ``target`` or more, red under ``alert``."""
    if value is None:
        return Status.GREY
    if value >= target:
        return Status.GREEN
    return Status.AMBER if value >= alert else Status.RED


@dataclass(frozen=True)
class OversellRate:
    """Orders with an oversell incident per order committed (target 0: any is red)."""

    orders: int
    oversold_orders: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.oversold_orders, self.orders)

    @property
    def status(self) -> Status:
        if self.oversold_orders:
            return Status.RED
        return Status.GREEN if self.orders else Status.GREY


@dataclass(frozen=True)
class ErrorRate:
    """Pushes the channel failed or refused per push sent (shadow and throttled attempts
    are not sends; a compare-and-set ``stale`` is a send and not an error). Target < 0.1 %,
    red from 1 %."""

    sent: int
    errors: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.errors, self.sent)

    @property
    def status(self) -> Status:
        return rate_status(self.rate, target=ERROR_RATE_TARGET, alert=ERROR_RATE_ALERT)


@dataclass(frozen=True)
class WebhookHealth:
    """Receipts that arrived in the window and were dealt with, of those that should have
    been by now. Troubled: failed, quarantined, their order never came, or still waiting
    past ``RECEIPT_OVERDUE``. Target 99.9 %, red under 99 %."""

    received: int
    handled: int
    failed: int
    quarantined: int
    order_never_came: int
    overdue: int
    last_received_at: dt.datetime | None

    @property
    def troubled(self) -> int:
        return self.failed + self.quarantined + self.order_never_came + self.overdue

    @property
    def share_healthy(self) -> float | None:
        return _ratio(self.handled, self.handled + self.troubled)

    @property
    def status(self) -> Status:
        return share_status(
            self.share_healthy, target=WEBHOOK_HEALTH_TARGET, alert=WEBHOOK_HEALTH_ALERT
        )


@dataclass(frozen=True)
class Uptime:
    """The share of the window's minutes in which the channel was healthy, from what
    happened: a minute is down when every push call in it failed, when a webhook received
    in it failed or waits overdue, or while the channel's circuit breaker is open (from the
    start of its spell of failures). Overall: minutes in which every channel was healthy.
    Target 99.9 %, red under 99 %."""

    minutes: int
    down_minutes: int

    @property
    def share(self) -> float | None:
        return _ratio(self.minutes - self.down_minutes, self.minutes)

    @property
    def status(self) -> Status:
        return share_status(self.share, target=UPTIME_TARGET, alert=UPTIME_ALERT)


@dataclass(frozen=True)
class BufferUtilization:
    """Units held back from the channel now (its ATS less what it was last told, over its
    pushed listings) against the units it sold in the window. Informational: the buffer's
    size is the operator's choice (the safety-stock calculator recommends one)."""

    available_units: int
    listed_units: int
    held_back_units: int
    sold_units: int
    # When the held-back figures were worked out (``None``: not yet).
    taken_at: dt.datetime | None = None

    @property
    def held_back_share(self) -> float | None:
        return _ratio(self.held_back_units, self.available_units)

    @property
    def status(self) -> Status:
        return Status.GREY


@dataclass(frozen=True)
class ChannelKpis:
    """Every channel-side KPI of one channel (``channel_id``), or overall (``None``)."""

    channel_id: int | None
    latency: SyncLatency
    oversell: OversellRate
    errors: ErrorRate
    webhooks: WebhookHealth
    uptime: Uptime
    buffer: BufferUtilization


def channel_kpis(
    *, start: dt.datetime, end: dt.datetime, channels: Iterable[Channel] | None = None
) -> dict[int | None, ChannelKpis]:
    """The channel-side KPIs over ``[start, end)`` for every channel (or those given), by
    channel id, and overall under ``None``. Seven queries and one roll-up
    (``roll_up_pushes``) whatever the number of channels."""
    listed = list(channels_in_console_order() if channels is None else channels)
    ids = [channel.pk for channel in listed]
    roll_up_pushes()  # once, for the three figures read from the rollup
    latency = _sync_latency(start=start, end=end, channel_ids=ids)
    oversell = _oversell_rates(start=start, end=end, channels=listed)
    errors = _error_rates(start=start, end=end, channel_ids=ids)
    webhooks = webhook_health(start=start, end=end, channel_ids=ids)
    uptime = _uptimes(start=start, end=end, channel_ids=ids)
    buffer = buffer_utilization(start=start, end=end, channels=listed)
    no_latency = SyncLatency(to_acknowledged=Percentiles.none(), to_applied=Percentiles.none())
    return {
        key: ChannelKpis(
            channel_id=key,
            latency=latency.get(key, no_latency),
            oversell=oversell[key],
            errors=errors[key],
            webhooks=webhooks[key],
            uptime=uptime[key],
            buffer=buffer[key],
        )
        for key in [*ids, None]
    }


def _oversell_rates(
    *, start: dt.datetime, end: dt.datetime, channels: list[Channel]
) -> dict[int | None, OversellRate]:
    # An order is a distinct (source, actor, reference) among order_committed events, as in
    # the daily report; a channel's orders are those its ingest committed (actor = slug).
    by_slug = {channel.slug: channel.pk for channel in channels}
    with connection.cursor() as cursor:
        # Raw SQL: counts of distinct orders per actor and overall in one scan of the
        # (kind, created_at) index. The orders are made distinct first (hashed) and then
        # counted: count(DISTINCT (row)) sorts and compares records, several times slower.
        cursor.execute(
            """
            SELECT channel_actor, count(*) AS orders
              FROM (SELECT DISTINCT CASE WHEN source = 'channel' THEN actor END,
                           source, actor, external_reference
                      FROM inventory_inventoryevent
                     WHERE kind = 'order_committed' AND created_at >= %s AND created_at < %s
                   ) AS orders(channel_actor, source, actor, external_reference)
             GROUP BY GROUPING SETS ((channel_actor), ())
            """,
            [start, end],
        )
        order_rows = cursor.fetchall()
        cursor.execute(
            """
            SELECT channel_id, count(DISTINCT (channel_id, order_reference))
              FROM channels_oversellincident
             WHERE created_at >= %s AND created_at < %s
             GROUP BY GROUPING SETS ((channel_id), ())
            """,
            [start, end],
        )
        oversold = {channel_id: count for channel_id, count in cursor.fetchall()}
    orders: dict[int | None, int] = {}
    for actor, count in order_rows:
        if actor is None:
            # Two NULL-actor rows: the overall total, and the orders from outside channels.
            orders[None] = max(orders.get(None, 0), count)
        elif actor in by_slug:
            orders[by_slug[actor]] = count
    return {
        key: OversellRate(orders=orders.get(key, 0), oversold_orders=oversold.get(key, 0))
        for key in [*by_slug.values(), None]
    }


def error_rates(
    *, start: dt.datetime, end: dt.datetime, channel_ids: list[int]
) -> dict[int | None, ErrorRate]:
    """Each channel's error rate over ``[start, end)`` (whole minutes, from the rollup), by
    id and overall under ``None``. The roll-up and one query."""
    roll_up_pushes()
    return _error_rates(start=start, end=end, channel_ids=channel_ids)


def _error_rates(
    *, start: dt.datetime, end: dt.datetime, channel_ids: list[int]
) -> dict[int | None, ErrorRate]:
    """``error_rates`` over the rollup as it stands (rolled up by the caller)."""
    with connection.cursor() as cursor:
        # Raw SQL: GROUPING SETS, per channel and overall in one statement, over the
        # window's rollup rows (sends and errors are counted there by sent_at).
        cursor.execute(
            f"""
            SELECT rollup.channel_id, sum(rollup.sends), sum(rollup.errors)
              FROM channels_pushrollup rollup
             WHERE {RollupWindow.CONDITION} AND rollup.channel_id = ANY(%(ids)s)
             GROUP BY GROUPING SETS ((rollup.channel_id), ())
             HAVING sum(rollup.sends) > 0
            """,
            {**RollupWindow(start=start, end=end).params, "ids": channel_ids},
        )
        rows = {
            channel_id: (int(sent), int(errors)) for channel_id, sent, errors in cursor.fetchall()
        }
    return {key: ErrorRate(*rows.get(key, (0, 0))) for key in [*channel_ids, None]}


def webhook_health(
    *, start: dt.datetime, end: dt.datetime, channel_ids: list[int]
) -> dict[int | None, WebhookHealth]:
    """Each channel's webhook delivery health over ``[start, end)``, by id and overall
    under ``None``. One query."""
    with connection.cursor() as cursor:
        # Raw SQL: GROUPING SETS over the (status, received_at) index.
        cursor.execute(
            """
            SELECT channel_id, count(*),
                   count(*) FILTER (WHERE status IN ('processed', 'ignored', 'awaiting_order')),
                   count(*) FILTER (WHERE status = 'failed'),
                   count(*) FILTER (WHERE status = 'quarantined'),
                   count(*) FILTER (WHERE status = 'order_missing'),
                   count(*) FILTER (WHERE status = 'received' AND received_at < %(overdue)s),
                   max(received_at)
              FROM channels_webhookreceipt
             WHERE received_at >= %(start)s AND received_at < %(end)s
               AND channel_id = ANY(%(ids)s)
             GROUP BY GROUPING SETS ((channel_id), ())
            """,
            {"start": start, "end": end, "ids": channel_ids, "overdue": end - RECEIPT_OVERDUE},
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    empty = (0, 0, 0, 0, 0, 0, None)
    return {key: WebhookHealth(*rows.get(key, empty)) for key in [*channel_ids, None]}


# Raw SQL: minute buckets of trouble from three sources, de-duplicated per channel and
# across channels (GROUPING SETS over the union). A minute every send failed in is one of
# the rollup's minute rows.
_DOWN_MINUTES_SQL = """
WITH failed_pushes AS (
    SELECT channel_id, start AS minute
      FROM channels_pushrollup
     WHERE span_s = 60 AND start >= date_trunc('minute', %(start)s::timestamptz)
       AND start < %(end)s AND channel_id = ANY(%(ids)s)
       AND sends > 0 AND failed_sends = sends
), troubled_receipts AS (
    SELECT channel_id, date_trunc('minute', received_at) AS minute
      FROM channels_webhookreceipt
     WHERE received_at >= %(start)s AND received_at < %(end)s AND channel_id = ANY(%(ids)s)
       AND (status IN ('failed', 'quarantined')
            OR (status = 'received' AND received_at < %(overdue)s))
), open_breakers AS (
    SELECT breaker.channel_id, minute
      FROM channels_channelbreaker breaker,
           generate_series(
               date_trunc('minute', greatest(coalesce(breaker.failing_since, %(end)s),
                                             %(start)s)),
               %(end)s - interval '1 microsecond', interval '1 minute') AS minute
     WHERE breaker.open_until IS NOT NULL AND breaker.channel_id = ANY(%(ids)s)
), down AS (
    SELECT * FROM failed_pushes
    UNION SELECT * FROM troubled_receipts
    UNION SELECT * FROM open_breakers
)
SELECT channel_id, count(DISTINCT minute) FROM down GROUP BY GROUPING SETS ((channel_id), ())
"""


def uptimes(
    *, start: dt.datetime, end: dt.datetime, channel_ids: list[int]
) -> dict[int | None, Uptime]:
    """Each channel's uptime over ``[start, end)``, by id and overall under ``None``. The
    roll-up and one query."""
    roll_up_pushes()
    return _uptimes(start=start, end=end, channel_ids=channel_ids)


def _uptimes(
    *, start: dt.datetime, end: dt.datetime, channel_ids: list[int]
) -> dict[int | None, Uptime]:
    """``uptimes`` over the rollup as it stands (rolled up by the caller)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DOWN_MINUTES_SQL,
            {"start": start, "end": end, "ids": channel_ids, "overdue": end - RECEIPT_OVERDUE},
        )
        down = dict(cursor.fetchall())
    minutes = max(1, round((end - start).total_seconds() / 60))
    return {
        key: Uptime(minutes=minutes, down_minutes=min(minutes, down.get(key, 0)))
        for key in [*channel_ids, None]
    }


@dataclass(frozen=True)
class HeldBack:
    """A channel's pushed listings now: ATS, what it was last told, and the difference
    where the channel shows less (``BufferUtilization``)."""

    available_units: int
    listed_units: int
    held_back_units: int


def held_back_now(*, channel_ids: Sequence[int]) -> dict[int, HeldBack]:
    """The units each channel's pushed listings hold back now, worked out from the ATS of
    every listing (a channel with no pushed listing is absent). One query over the whole
    catalogue: the beat's buffer snapshot runs it (``services.take_buffer_snapshots``), the
    pages read the snapshot."""
    ats = rules.ats_on_channel_sql(sku_id="listing.sku_id", channel_id="listing.channel_id")
    with connection.cursor() as cursor:
        # Raw SQL: the ATS expression of channels.rules (bundle-aware, over the channel's
        # locations) per pushed listing, summed per channel.
        cursor.execute(
            f"""
            SELECT listing.channel_id,
                   sum(greatest(available.units, 0)),
                   sum(state.last_pushed_quantity),
                   sum(greatest(available.units - state.last_pushed_quantity, 0))
              FROM channels_listing listing
              JOIN channels_listingsyncstate state ON state.listing_id = listing.id
              CROSS JOIN LATERAL (SELECT {ats} AS units) available
             WHERE listing.channel_id = ANY(%s) AND listing.is_active
               AND NOT listing.fulfilled_by_channel AND listing.sku_id IS NOT NULL
               AND state.last_pushed_quantity IS NOT NULL
             GROUP BY listing.channel_id
            """,
            [list(channel_ids)],
        )
        return {
            channel_id: HeldBack(
                available_units=int(available or 0),
                listed_units=int(listed or 0),
                held_back_units=int(held_back or 0),
            )
            for channel_id, available, listed, held_back in cursor.fetchall()
        }


def buffer_utilization(
    *, start: dt.datetime, end: dt.datetime, channels: list[Channel]
) -> dict[int | None, BufferUtilization]:
    """Units held back from each channel at its last buffer snapshot (the beat takes one
    every 5 minutes), and sold on it in ``[start, end)``, by channel id and overall (``None``).
    Two queries."""
    ids = [channel.pk for channel in channels]
    by_slug = {channel.slug: channel.pk for channel in channels}
    snapshots = {
        snapshot.channel_id: snapshot
        for snapshot in BufferSnapshot.objects.filter(channel_id__in=ids)
    }
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT actor, sum(delta_committed)
              FROM inventory_inventoryevent
             WHERE kind = 'order_committed' AND source = 'channel'
               AND created_at >= %s AND created_at < %s AND actor = ANY(%s)
             GROUP BY actor
            """,
            [start, end, list(by_slug)],
        )
        sold = {by_slug[actor]: int(units) for actor, units in cursor.fetchall()}
    figures: dict[int | None, BufferUtilization] = {
        channel_id: BufferUtilization(
            available_units=snapshot.available_units if snapshot else 0,
            listed_units=snapshot.listed_units if snapshot else 0,
            held_back_units=snapshot.held_back_units if snapshot else 0,
            sold_units=sold.get(channel_id, 0),
            taken_at=snapshot.taken_at if snapshot else None,
        )
        for channel_id, snapshot in ((pk, snapshots.get(pk)) for pk in ids)
    }
    figures[None] = BufferUtilization(
        available_units=sum(figure.available_units for figure in figures.values()),
        listed_units=sum(figure.listed_units for figure in figures.values()),
        held_back_units=sum(figure.held_back_units for figure in figures.values()),
        sold_units=sum(sold.values()),
        taken_at=min(
            (figure.taken_at for figure in figures.values() if figure.taken_at), default=None
        ),
    )
    return figures


# ---------------------------------------------------------------------------------------
# The channels page: the state of each channel's pipeline now
# ---------------------------------------------------------------------------------------
THROTTLE_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ChannelActivity:
    """What a channel's pipeline holds now: pushes owed and in flight (claimed, or accepted
    and not applied yet), throttled answers in the last hour, open dead letters, the
    breaker, the last push the channel acknowledged, and the last operator action."""

    channel: Channel
    owed: int
    in_flight: int
    throttled_last_hour: int
    open_dead_letters: int
    breaker_state: str
    last_success_at: dt.datetime | None
    last_operation: ChannelOperation | None


def channel_activity(
    *, channels: Sequence[Channel], now: dt.datetime | None = None
) -> dict[int, ChannelActivity]:
    """The pipeline state of each channel given, by id. Six queries whatever the number."""
    now = now or timezone.now()
    ids = [channel.pk for channel in channels]
    owed = {
        row["channel_id"]: row
        for row in PendingPush.objects.filter(channel_id__in=ids)
        .values("channel_id")
        .annotate(owed=Count("pk"), claimed=Count("pk", filter=Q(claimed_until__gt=now)))
    }
    submitted = dict(
        SubmittedWrite.objects.filter(channel_id__in=ids)
        .values("channel_id")
        .annotate(count=Count("pk"))
        .values_list("channel_id", "count")
    )
    throttled = dict(
        PushAttempt.objects.filter(
            channel_id__in=ids,
            outcome=PushAttempt.Outcome.THROTTLED,
            sent_at__gte=now - THROTTLE_WINDOW,
        )
        .values("channel_id")
        .annotate(count=Count("pk"))
        .values_list("channel_id", "count")
    )
    dead = dict(
        DeadLetter.objects.filter(channel_id__in=ids, status=DeadLetter.Status.OPEN)
        .values("channel_id")
        .annotate(count=Count("pk"))
        .values_list("channel_id", "count")
    )
    breakers = {
        breaker.channel_id: breaker
        for breaker in ChannelBreaker.objects.filter(channel_id__in=ids)
    }
    last_success = _last_success(ids)
    operations = {
        operation.channel_id: operation
        for operation in ChannelOperation.objects.filter(channel_id__in=ids)
        .order_by("channel_id", "-created_at", "-pk")
        .distinct("channel_id")
    }
    activity = {}
    for channel in channels:
        breaker = breakers.get(channel.pk)
        pending = owed.get(channel.pk, {"owed": 0, "claimed": 0})
        activity[channel.pk] = ChannelActivity(
            channel=channel,
            owed=pending["owed"],
            in_flight=pending["claimed"] + submitted.get(channel.pk, 0),
            throttled_last_hour=throttled.get(channel.pk, 0),
            open_dead_letters=dead.get(channel.pk, 0),
            breaker_state=(
                breaker.state(now) if breaker is not None else ChannelBreaker.State.CLOSED
            ),
            last_success_at=last_success.get(channel.pk),
            last_operation=operations.get(channel.pk),
        )
    return activity


def owed_pushes(*, channel_ids: Sequence[int]) -> dict[int, int]:
    """How many listings each channel is owed a push of now (absent: none)."""
    return dict(
        PendingPush.objects.filter(channel_id__in=channel_ids)
        .values("channel_id")
        .annotate(count=Count("pk"))
        .values_list("channel_id", "count")
    )


@dataclass(frozen=True)
class ThroughputPoint:
    """Orders committed and pushes sent (shadow ones excluded) in one minute."""

    minute: dt.datetime
    orders: int
    pushes: int


# Raw SQL: a series of minutes left-joined to two counts (a minute with nothing is 0).
_THROUGHPUT_SQL = """
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', %(start)s::timestamptz),
                           %(end)s::timestamptz - interval '1 microsecond',
                           interval '1 minute') AS minute
), orders AS (
    SELECT date_trunc('minute', created_at) AS minute,
           count(DISTINCT (source, actor, external_reference)) AS orders
      FROM inventory_inventoryevent
     WHERE kind = 'order_committed' AND created_at >= %(start)s AND created_at < %(end)s
     GROUP BY 1
), pushes AS (
    SELECT start AS minute, sum(pushes) AS pushes
      FROM channels_pushrollup
     WHERE span_s = 60 AND start >= date_trunc('minute', %(start)s::timestamptz)
       AND start < %(end)s
     GROUP BY 1
)
SELECT minutes.minute, coalesce(orders.orders, 0), coalesce(pushes.pushes, 0)
  FROM minutes
  LEFT JOIN orders USING (minute)
  LEFT JOIN pushes USING (minute)
 ORDER BY minutes.minute
"""


def throughput_per_minute(*, start: dt.datetime, end: dt.datetime) -> list[ThroughputPoint]:
    """Orders and pushes per minute over the window, every minute present. The roll-up
    and one query."""
    roll_up_pushes()
    with connection.cursor() as cursor:
        cursor.execute(_THROUGHPUT_SQL, {"start": start, "end": end})
        return [
            ThroughputPoint(minute=minute, orders=orders, pushes=int(pushes))
            for minute, orders, pushes in cursor.fetchall()
        ]


def _last_success(channel_ids: list[int]) -> dict[int, dt.datetime]:
    if not channel_ids:
        return {}
    with connection.cursor() as cursor:
        # Raw SQL: a LATERAL look-up per channel walks the (channel, -sent_at) index from
        # the newest attempt instead of aggregating every attempt ever made.
        cursor.execute(
            """
            SELECT channel.id, latest.acked_at
              FROM unnest(%s::bigint[]) AS channel(id)
              CROSS JOIN LATERAL (
                  SELECT acked_at FROM channels_pushattempt
                   WHERE channel_id = channel.id AND outcome IN ('applied', 'submitted')
                   ORDER BY sent_at DESC LIMIT 1) latest
            """,
            [channel_ids],
        )
        return dict(cursor.fetchall())


def _ratio(numerator: int, denominator: int, digits: int = 6) -> float | None:
    return round(numerator / denominator, digits) if denominator else None
