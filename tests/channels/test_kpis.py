"""Sync-health KPIs against known data: each figure worked out by hand from the rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channels import kpis
from channels.models import PushAttempt
from tests import factories

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def _attempt(listing, *, outcome, change_ago_s, acked_ago_s, sent_ago_s=None, latency=True):
    change_at = NOW - dt.timedelta(seconds=change_ago_s)
    acked_at = NOW - dt.timedelta(seconds=acked_ago_s)
    sent_at = NOW - dt.timedelta(seconds=acked_ago_s if sent_ago_s is None else sent_ago_s)
    return PushAttempt.objects.create(
        channel_id=listing.channel_id,
        listing=listing,
        target_quantity=1,
        outcome=outcome,
        change_at=change_at,
        sent_at=sent_at,
        acked_at=acked_at,
        latency_ms=(acked_at - change_at).total_seconds() * 1000 if latency else None,
    )


@pytest.fixture
def two_channels(sku):
    fast = factories.make_channel(name="Fast")
    slow = factories.make_channel(name="Slow")
    return (
        factories.make_listing(channel=fast, sku=sku),
        factories.make_listing(channel=slow, sku=sku),
    )


def test_latency_percentiles_per_channel_and_overall(two_channels) -> None:
    """Latencies 1..100 s on one channel and 200 s on another give the interpolated
    percentiles of each set, and of all 101 together."""
    fast, slow = two_channels
    for seconds in range(1, 101):
        _attempt(fast, outcome="applied", change_ago_s=seconds + 10, acked_ago_s=10)
    _attempt(slow, outcome="applied", change_ago_s=210, acked_ago_s=10)
    # Outside the window, and not acknowledged: ignored.
    _attempt(fast, outcome="applied", change_ago_s=99_999, acked_ago_s=90_000)
    _attempt(fast, outcome="failed", change_ago_s=5000, acked_ago_s=10, latency=False)

    figures = kpis.sync_latency(start=NOW - dt.timedelta(hours=1), end=NOW)

    fast_latency = figures[fast.channel_id].to_applied
    assert fast_latency.samples == 100
    # percentile_cont over 1..100 s: 1 + 0.5*99 = 50.5 s, 1 + 0.95*99 = 95.05 s, 99.01 s.
    assert fast_latency.p50_ms == 50_500.0
    assert fast_latency.p95_ms == 95_050.0
    assert fast_latency.p99_ms == 99_010.0
    assert figures[fast.channel_id].to_acknowledged == fast_latency
    assert figures[slow.channel_id].to_applied.p50_ms == 200_000.0
    overall = figures[None].to_applied
    assert overall.samples == 101
    assert overall.p50_ms == 51_000.0  # the 51st of 1..100, 200
    assert overall.p99_ms == 100_000.0  # position 99 of 0..100: the 100th value


def test_asynchronous_write_is_measured_to_acceptance_and_to_applied(two_channels) -> None:
    """A feed accepted 2 s after the change and applied 25 s after it counts 2 s to the
    acknowledgement and 30 s to "applied"; its settlement is not a second acknowledgement."""
    listing, _ = two_channels
    _attempt(listing, outcome="submitted", change_ago_s=40, acked_ago_s=38, latency=False)
    # The settlement: sent_at is the submission's, acked_at when it was found applied.
    _attempt(listing, outcome="applied", change_ago_s=40, acked_ago_s=15, sent_ago_s=38)

    latency = kpis.channel_sync_latency(channel_id=listing.channel_id, now=NOW)

    assert latency.to_acknowledged.samples == 1
    assert latency.to_acknowledged.p95_ms == 2_000.0
    assert latency.to_applied.samples == 1
    assert latency.to_applied.p95_ms == 25_000.0
    assert latency.status == kpis.Status.GREEN


def test_channel_without_pushes_has_no_latency(two_channels) -> None:
    """No push in the window: no figure (grey), not 0 ms."""
    listing, _ = two_channels
    latency = kpis.channel_sync_latency(channel_id=listing.channel_id, now=NOW)
    assert latency.to_applied == kpis.Percentiles.none()
    assert latency.status == kpis.Status.GREY


@pytest.mark.parametrize(
    ("p95_ms", "status"),
    [(29_999.0, "green"), (30_000.0, "amber"), (60_000.0, "amber"), (60_001.0, "red")],
)
def test_latency_colour_follows_target_and_alert_line(p95_ms, status) -> None:
    assert kpis.latency_status(p95_ms) == status


def test_latency_series_buckets_p95_per_channel(two_channels) -> None:
    """Two buckets of a minute: each has the p95 of its own pushes."""
    listing, _ = two_channels
    start = NOW - dt.timedelta(minutes=2)
    for seconds in (1, 2, 3):  # in the first minute
        _attempt(listing, outcome="applied", change_ago_s=110 + seconds, acked_ago_s=110)
    _attempt(listing, outcome="applied", change_ago_s=50 + 40, acked_ago_s=50)

    series = kpis.latency_series(start=start, end=NOW, bucket=dt.timedelta(minutes=1))

    points = series[listing.channel_id]
    assert [point.bucket_start for point in points] == [start, start + dt.timedelta(minutes=1)]
    assert [point.samples for point in points] == [3, 1]
    assert points[0].p95_ms == 2_900.0  # 1 + 0.95*2 s
    assert points[1].p95_ms == 40_000.0
