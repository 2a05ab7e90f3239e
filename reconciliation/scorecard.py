"""The sync-health scorecard, the channels page's rows and the charts' series: the
channel-side KPIs of ``channels.kpis`` with what reconciliation measured (accuracy at the
last poll, drift per run, runs in progress). Selectors only: each reads, none writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from channels import kpis
from channels.models import Channel
from reconciliation import services
from reconciliation.models import ReconciliationRun

ACCURACY_TARGET = 0.995
SPARKLINE_WINDOW = dt.timedelta(hours=24)
SPARKLINE_BUCKET = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Accuracy:
    """Listings matching at the channel's last finished reconciliation poll (judged:
    compared, less those with a push in flight). Target 99.5 %; red where the poll's drift
    reaches the drift alert (``RECONCILIATION_DRIFT_ALERT_PERCENT``)."""

    listings_judged: int
    discrepancies: int
    polled_at: dt.datetime | None

    @property
    def share(self) -> float | None:
        if not self.listings_judged:
            return None
        return round(1 - self.discrepancies / self.listings_judged, 6)

    @property
    def drift_percent(self) -> float | None:
        share = self.share
        return None if share is None else round((1 - share) * 100, 4)

    @property
    def status(self) -> kpis.Status:
        return kpis.share_status(
            self.share,
            target=ACCURACY_TARGET,
            alert=1 - services.drift_alert_percent() / 100,
        )


NO_POLL = Accuracy(listings_judged=0, discrepancies=0, polled_at=None)


def accuracy_at_last_poll(*, channel_ids: Sequence[int]) -> dict[int | None, Accuracy]:
    """Each channel's accuracy at its last finished poll, by id, and overall (the sum over
    those polls) under ``None``. One query."""
    with connection.cursor() as cursor:
        # Raw SQL: DISTINCT ON picks each channel's newest finished poll through the
        # (channel, kind, -started_at) index.
        cursor.execute(
            """
            SELECT DISTINCT ON (channel_id) channel_id,
                   listings_checked - skipped_in_flight, found, finished_at
              FROM reconciliation_reconciliationrun
             WHERE kind = 'poll' AND status = 'done' AND channel_id = ANY(%s)
             ORDER BY channel_id, started_at DESC
            """,
            [list(channel_ids)],
        )
        last = {
            channel_id: Accuracy(listings_judged=judged, discrepancies=found, polled_at=at)
            for channel_id, judged, found, at in cursor.fetchall()
        }
    overall = Accuracy(
        listings_judged=sum(accuracy.listings_judged for accuracy in last.values()),
        discrepancies=sum(accuracy.discrepancies for accuracy in last.values()),
        polled_at=max((a.polled_at for a in last.values() if a.polled_at), default=None),
    )
    return {**last, None: overall}


@dataclass(frozen=True)
class ScorecardRow:
    """One channel's KPIs (``channel`` is ``None`` on the overall row)."""

    channel: Channel | None
    figures: kpis.ChannelKpis
    accuracy: Accuracy

    @property
    def worst_status(self) -> kpis.Status:
        """The row's colour: its worst KPI (grey only when nothing is measured)."""
        statuses = {
            self.figures.latency.status,
            self.accuracy.status,
            self.figures.oversell.status,
            self.figures.uptime.status,
            self.figures.errors.status,
            self.figures.webhooks.status,
        }
        for status in (kpis.Status.RED, kpis.Status.AMBER, kpis.Status.GREEN):
            if status in statuses:
                return status
        return kpis.Status.GREY


@dataclass(frozen=True)
class Scorecard:
    """The scorecard over ``[start, end)``: a row per channel and the overall row."""

    start: dt.datetime
    end: dt.datetime
    rows: list[ScorecardRow]
    overall: ScorecardRow


def scorecard(
    *, now: dt.datetime | None = None, window: dt.timedelta = kpis.KPI_WINDOW
) -> Scorecard:
    """Every KPI per channel and overall, over the last ``window`` (24 h). Nine queries
    whatever the number of channels."""
    end = now or timezone.now()
    start = end - window
    channels = list(kpis.channels_in_console_order())
    figures = kpis.channel_kpis(start=start, end=end, channels=channels)
    accuracy = accuracy_at_last_poll(channel_ids=[channel.pk for channel in channels])
    rows = [
        ScorecardRow(
            channel=channel,
            figures=figures[channel.pk],
            accuracy=accuracy.get(channel.pk, NO_POLL),
        )
        for channel in channels
    ]
    overall = ScorecardRow(channel=None, figures=figures[None], accuracy=accuracy[None])
    return Scorecard(start=start, end=end, rows=rows, overall=overall)


# ---------------------------------------------------------------------------------------
# The channels page
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunProgress:
    """A poll or full sync of a channel that is running: how far it is."""

    run_id: int
    kind: str
    kind_label: str
    started_at: dt.datetime
    done: int
    total: int

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))


@dataclass(frozen=True)
class ChannelRow:
    """A row of the channels page."""

    activity: kpis.ChannelActivity
    accuracy: Accuracy
    running: list[RunProgress]
    sparkline: list[kpis.LatencyPoint]

    @property
    def channel(self) -> Channel:
        return self.activity.channel


def channel_rows(*, now: dt.datetime | None = None) -> list[ChannelRow]:
    """A row per channel: pipeline state, drift at the last poll, runs in progress and a
    24-hour latency sparkline (hourly p95). Eleven queries whatever the number."""
    now = now or timezone.now()
    channels = list(kpis.channels_in_console_order())
    ids = [channel.pk for channel in channels]
    activity = kpis.channel_activity(channels=channels, now=now)
    accuracy = accuracy_at_last_poll(channel_ids=ids)
    running = _running_runs(channel_ids=ids)
    sparklines = kpis.latency_series(
        start=now - SPARKLINE_WINDOW, end=now, bucket=SPARKLINE_BUCKET, channel_ids=ids
    )
    return [
        ChannelRow(
            activity=activity[channel.pk],
            accuracy=accuracy.get(channel.pk, NO_POLL),
            running=running.get(channel.pk, []),
            sparkline=sparklines.get(channel.pk, []),
        )
        for channel in channels
    ]


def _running_runs(*, channel_ids: list[int]) -> dict[int, list[RunProgress]]:
    runs = list(
        ReconciliationRun.objects.filter(
            channel_id__in=channel_ids,
            status=ReconciliationRun.Status.RUNNING,
            kind__in=[ReconciliationRun.Kind.POLL, ReconciliationRun.Kind.FULL_SYNC],
        ).order_by("started_at")
    )
    # A full sync is done with a listing once it owes it nothing: counted live from the
    # outbox (the stored count is brought up to date by the reconcile command only).
    syncing = {run.channel_id for run in runs if run.kind == ReconciliationRun.Kind.FULL_SYNC}
    owed = kpis.owed_pushes(channel_ids=sorted(syncing)) if syncing else {}
    progress: dict[int, list[RunProgress]] = {}
    for run in runs:
        done = run.listings_checked
        if run.kind == ReconciliationRun.Kind.FULL_SYNC:
            done = max(0, run.listings_total - owed.get(run.channel_id, 0))
        progress.setdefault(run.channel_id, []).append(
            RunProgress(
                run_id=run.pk,
                kind=run.kind,
                kind_label=run.get_kind_display(),
                started_at=run.started_at,
                done=done,
                total=run.listings_total,
            )
        )
    return progress


# ---------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftPoint:
    """The drift a finished poll found on a channel."""

    finished_at: dt.datetime
    drift_percent: float


def drift_by_run(*, start: dt.datetime, end: dt.datetime) -> dict[int, list[DriftPoint]]:
    """The drift % of each finished poll per channel in the window, oldest first."""
    series: dict[int, list[DriftPoint]] = {}
    for channel_id, finished_at, drift_percent in (
        ReconciliationRun.objects.filter(
            kind=ReconciliationRun.Kind.POLL,
            status=ReconciliationRun.Status.DONE,
            finished_at__gte=start,
            finished_at__lt=end,
            drift_percent__isnull=False,
        )
        .order_by("channel_id", "finished_at")
        .values_list("channel_id", "finished_at", "drift_percent")
    ):
        if finished_at is not None and drift_percent is not None:
            series.setdefault(channel_id, []).append(
                DriftPoint(finished_at=finished_at, drift_percent=drift_percent)
            )
    return series
