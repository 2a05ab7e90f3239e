"""Sync-health figures of the channels, each per channel and overall, for the console, the
metrics endpoint and the KPI API. Selectors only: each reads, none writes.

The figures whose data live in reconciliation (accuracy at the last poll, drift per run) are
added by ``reconciliation.scorecard``, which builds the whole scorecard on these.

Targets and colours (``Status``): green meets the target, amber misses it, red crosses the
alert line; grey has nothing to measure yet (a KPI with no data is ``None``, never 0).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from channels.models import Channel

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


# Raw SQL: PostgreSQL's ordered-set aggregates (percentile_cont) and GROUPING SETS, for
# every channel and overall in one statement. A push's acknowledgement: an applied write
# that was not the settlement of an earlier submission, or the submission's acceptance
# (its settlement is recorded as an applied attempt with the submission's sent_at).
_LATENCY_SQL = """
WITH acknowledged AS (
    SELECT attempt.channel_id,
           extract(epoch FROM (attempt.acked_at - attempt.change_at)) * 1000 AS ms
      FROM channels_pushattempt attempt
     WHERE attempt.acked_at >= %(start)s AND attempt.acked_at < %(end)s
       AND (%(all_channels)s OR attempt.channel_id = ANY(%(channel_ids)s))
       AND (attempt.outcome = 'submitted'
            OR (attempt.outcome = 'applied'
                AND NOT EXISTS (
                    SELECT 1 FROM channels_pushattempt submission
                     WHERE submission.listing_id = attempt.listing_id
                       AND submission.sent_at = attempt.sent_at
                       AND submission.outcome = 'submitted')))
), applied AS (
    SELECT attempt.channel_id, attempt.latency_ms AS ms
      FROM channels_pushattempt attempt
     WHERE attempt.outcome = 'applied' AND attempt.latency_ms IS NOT NULL
       AND attempt.acked_at >= %(start)s AND attempt.acked_at < %(end)s
       AND (%(all_channels)s OR attempt.channel_id = ANY(%(channel_ids)s))
)
SELECT 'acknowledged' AS stage, channel_id, count(*) AS samples,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS percentiles
  FROM acknowledged GROUP BY GROUPING SETS ((channel_id), ())
UNION ALL
SELECT 'applied', channel_id, count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms)
  FROM applied GROUP BY GROUPING SETS ((channel_id), ())
"""


def sync_latency(
    *, start: dt.datetime, end: dt.datetime, channel_ids: Iterable[int] | None = None
) -> dict[int | None, SyncLatency]:
    """Latency percentiles of the pushes acknowledged in ``[start, end)``, by channel id,
    and overall under the key ``None``; in one query. A channel with no push in the window
    is absent (use ``.get(id)`` and ``Percentiles.none()``)."""
    ids = None if channel_ids is None else list(channel_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            _LATENCY_SQL,
            {"start": start, "end": end, "all_channels": ids is None, "channel_ids": ids or []},
        )
        rows = cursor.fetchall()
    stages: dict[int | None, dict[str, Percentiles]] = {}
    for stage, channel_id, samples, percentiles in rows:
        p50, p95, p99 = percentiles if percentiles else (None, None, None)
        stages.setdefault(channel_id, {})[stage] = Percentiles(
            samples=samples, p50_ms=_ms(p50), p95_ms=_ms(p95), p99_ms=_ms(p99)
        )
    stages.setdefault(None, {})
    return {
        channel_id: SyncLatency(
            to_acknowledged=by_stage.get("acknowledged", Percentiles.none()),
            to_applied=by_stage.get("applied", Percentiles.none()),
        )
        for channel_id, by_stage in stages.items()
    }


def channel_sync_latency(
    *, channel_id: int, window: dt.timedelta = LATENCY_WINDOW, now: dt.datetime | None = None
) -> SyncLatency:
    """One channel's measured propagation latency over the last ``window`` (24 h by
    default): ``.to_applied.p95_ms`` is the figure a safety buffer must cover. ``None``
    percentiles when the channel acknowledged no push in the window. One query."""
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


# Raw SQL: date_bin and percentile_cont per (channel, bucket).
_LATENCY_SERIES_SQL = """
SELECT channel_id,
       date_bin(make_interval(secs => %(bucket_s)s), acked_at, %(start)s) AS bucket_start,
       count(*) AS samples,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms
  FROM channels_pushattempt
 WHERE outcome = 'applied' AND latency_ms IS NOT NULL
   AND acked_at >= %(start)s AND acked_at < %(end)s
 GROUP BY channel_id, bucket_start
 ORDER BY channel_id, bucket_start
"""


def latency_series(
    *, start: dt.datetime, end: dt.datetime, bucket: dt.timedelta
) -> dict[int, list[LatencyPoint]]:
    """p95 latency to "applied" per channel per time bucket (buckets with no push are
    absent), for the latency chart and the channels page's sparklines. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            _LATENCY_SERIES_SQL,
            {"start": start, "end": end, "bucket_s": bucket.total_seconds()},
        )
        rows = cursor.fetchall()
    series: dict[int, list[LatencyPoint]] = {}
    for channel_id, bucket_start, samples, p95_ms in rows:
        series.setdefault(channel_id, []).append(
            LatencyPoint(bucket_start=bucket_start, samples=samples, p95_ms=round(p95_ms, 1))
        )
    return series


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)
