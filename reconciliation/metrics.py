"""``GET /metrics``: the scorecard, queue depths, push and webhook counters and latency
histograms in Prometheus's text format (routes at the bottom, included from
``nventory/urls.py``).

Every figure is read from PostgreSQL at scrape time, so any web process answers for the
whole system (a per-process registry would count only that process's work). Counters are
counts of rows that are never deleted (push attempts, webhook receipts), so they only grow.

Protected: ``Authorization: Bearer <METRICS_BEARER_TOKEN>`` (for Prometheus), or a
signed-in user with ``channels.view_channel`` (for a person). Without either: 401 (no token
configured and nobody signed in) or 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from channels import kpis
from reconciliation import scorecard

READ_CHANNELS = "channels.view_channel"
# Latency buckets (seconds), around the 30 s target and the 60 s alert line.
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics, for a bearer of the token or a user who may read the channels."""
    if not _allowed(request):
        status = 403 if request.user.is_authenticated else 401
        response = HttpResponse("Not allowed.\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncHealthCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())
    return request.user.is_authenticated and request.user.has_perm(READ_CHANNELS)


class SyncHealthCollector(Collector):
    """Collects every figure at scrape time from the database."""

    def collect(self) -> Iterator[Metric]:
        card = scorecard.scorecard()
        slugs = {row.channel.pk: row.channel.slug for row in card.rows if row.channel}
        yield from _scorecard_gauges(card)
        yield from _queue_gauges(slugs)
        yield from _counters(slugs)
        yield from _latency_histograms(slugs)


def _scorecard_gauges(card: scorecard.Scorecard) -> Iterator[Metric]:
    def gauge(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["channel"])

    latency = gauge(
        "nventory_sync_latency_seconds",
        "Sync latency to applied over the last 24 h, by quantile (no sample: absent).",
    )
    latency_quantile = GaugeMetricFamily(
        "nventory_sync_latency_quantile_seconds",
        "Sync latency over the last 24 h by stage (acknowledged, applied) and quantile.",
        labels=["channel", "stage", "quantile"],
    )
    accuracy = gauge("nventory_sync_accuracy_ratio", "Listings matching at the last poll.")
    oversell = gauge("nventory_oversell_rate_ratio", "Oversold orders per order, last 24 h.")
    uptime = gauge("nventory_sync_uptime_ratio", "Share of healthy minutes, last 24 h.")
    errors = gauge("nventory_push_error_rate_ratio", "Failed or refused pushes per send.")
    webhooks = gauge("nventory_webhook_health_ratio", "Webhooks handled of those due.")
    held_back = gauge("nventory_buffer_held_back_units", "Units held back from the channel.")
    status = GaugeMetricFamily(
        "nventory_kpi_status",
        "The row's colour: 0 green, 1 amber, 2 red, -1 nothing measured.",
        labels=["channel"],
    )
    colours = {
        kpis.Status.GREEN: 0,
        kpis.Status.AMBER: 1,
        kpis.Status.RED: 2,
        kpis.Status.GREY: -1,
    }
    for row in [*card.rows, card.overall]:
        channel = row.channel.slug if row.channel is not None else "all"
        figures = row.figures
        for stage, percentiles in (
            ("acknowledged", figures.latency.to_acknowledged),
            ("applied", figures.latency.to_applied),
        ):
            for quantile, value in (
                ("0.5", percentiles.p50_ms),
                ("0.95", percentiles.p95_ms),
                ("0.99", percentiles.p99_ms),
            ):
                if value is not None:
                    latency_quantile.add_metric([channel, stage, quantile], value / 1000)
        if figures.latency.to_applied.p95_ms is not None:
            latency.add_metric([channel], figures.latency.to_applied.p95_ms / 1000)
        for family, value in (
            (accuracy, row.accuracy.share),
            (oversell, figures.oversell.rate),
            (uptime, figures.uptime.share),
            (errors, figures.errors.rate),
            (webhooks, figures.webhooks.share_healthy),
        ):
            if value is not None:
                family.add_metric([channel], value)
        held_back.add_metric([channel], figures.buffer.held_back_units)
        status.add_metric([channel], colours[row.worst_status])
    yield from (
        latency,
        latency_quantile,
        accuracy,
        oversell,
        uptime,
        errors,
        webhooks,
        held_back,
        status,
    )


def _queue_gauges(slugs: dict[int, str]) -> Iterator[Metric]:
    owed = GaugeMetricFamily(
        "nventory_pushes_owed", "Listings owed a push (the outbox).", labels=["channel"]
    )
    dead = GaugeMetricFamily(
        "nventory_dead_letters_open", "Dead letters not replayed.", labels=["channel"]
    )
    receipts = GaugeMetricFamily(
        "nventory_webhook_receipts_unprocessed",
        "Webhook receipts waiting to be processed.",
        labels=["channel"],
    )
    with connection.cursor() as cursor:
        # Raw SQL: three small grouped counts in one round trip.
        cursor.execute(
            """
            SELECT 'owed', channel_id, count(*) FROM channels_pendingpush GROUP BY channel_id
            UNION ALL
            SELECT 'dead', channel_id, count(*) FROM channels_deadletter
             WHERE status = 'open' GROUP BY channel_id
            UNION ALL
            SELECT 'receipts', channel_id, count(*) FROM channels_webhookreceipt
             WHERE status = 'received' GROUP BY channel_id
            """
        )
        counts = {(kind, channel_id): count for kind, channel_id, count in cursor.fetchall()}
    for channel_id, slug in slugs.items():
        owed.add_metric([slug], counts.get(("owed", channel_id), 0))
        dead.add_metric([slug], counts.get(("dead", channel_id), 0))
        receipts.add_metric([slug], counts.get(("receipts", channel_id), 0))
    yield from (owed, dead, receipts)


def _counters(slugs: dict[int, str]) -> Iterator[Metric]:
    pushes = CounterMetricFamily(
        "nventory_push_attempts", "Push attempts by outcome.", labels=["channel", "outcome"]
    )
    webhooks = CounterMetricFamily(
        "nventory_webhooks_received", "Webhooks received by status.", labels=["channel", "status"]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT channel_id, outcome, count(*) FROM channels_pushattempt GROUP BY 1, 2"
        )
        for channel_id, outcome, count in cursor.fetchall():
            if channel_id in slugs:
                pushes.add_metric([slugs[channel_id], outcome], count)
        cursor.execute(
            "SELECT channel_id, status, count(*) FROM channels_webhookreceipt GROUP BY 1, 2"
        )
        for channel_id, status, count in cursor.fetchall():
            if channel_id in slugs:
                webhooks.add_metric([slugs[channel_id], status], count)
    yield from (pushes, webhooks)


def _latency_histograms(slugs: dict[int, str]) -> Iterator[Metric]:
    histogram = HistogramMetricFamily(
        "nventory_push_latency_seconds",
        "Latency from the originating change to applied, of every applied push.",
        labels=["channel"],
    )
    bucket_columns = ", ".join(
        f"count(*) FILTER (WHERE latency_ms <= {bound * 1000})" for bound in LATENCY_BUCKETS_S
    )
    with connection.cursor() as cursor:
        # Raw SQL: every bucket of every channel's histogram in one scan; the bounds are
        # constants of this module.
        cursor.execute(
            f"""
            SELECT channel_id, {bucket_columns}, count(*), coalesce(sum(latency_ms), 0)
              FROM channels_pushattempt
             WHERE outcome = 'applied' AND latency_ms IS NOT NULL
             GROUP BY channel_id
            """
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    for channel_id, slug in slugs.items():
        if channel_id not in rows:
            continue
        *cumulative, total, sum_ms = rows[channel_id]
        buckets = [
            (str(bound), count) for bound, count in zip(LATENCY_BUCKETS_S, cumulative, strict=True)
        ]
        buckets.append(("+Inf", total))
        histogram.add_metric([slug], buckets, sum_value=float(sum_ms) / 1000)
    yield histogram


urlpatterns = [path("metrics", metrics_view, name="metrics")]
