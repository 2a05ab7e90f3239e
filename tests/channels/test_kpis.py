"""Sync-health KPIs against known data: each figure worked out by hand from the rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from channels import kpis
from channels import services as channel_services
from channels.models import PushAttempt, PushRollup
from tests import factories

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def about(exact_ms: float) -> object:
    """An exact percentile as read from the rollup's histograms: within half a bucket."""
    return pytest.approx(exact_ms, rel=kpis.LATENCY_PERCENTILE_PRECISION)


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
    percentiles of each set, and of all 101 together (within the histograms' precision)."""
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
    assert fast_latency.p50_ms == about(50_500.0)
    assert fast_latency.p95_ms == about(95_050.0)
    assert fast_latency.p99_ms == about(99_010.0)
    assert figures[fast.channel_id].to_acknowledged == fast_latency
    assert figures[slow.channel_id].to_applied.samples == 1
    assert figures[slow.channel_id].to_applied.p50_ms == about(200_000.0)
    overall = figures[None].to_applied
    assert overall.samples == 101
    assert overall.p50_ms == about(51_000.0)  # the 51st of 1..100, 200
    assert overall.p99_ms == about(100_000.0)  # position 99 of 0..100: the 100th value


def test_asynchronous_write_is_measured_to_acceptance_and_to_applied(two_channels) -> None:
    """A feed accepted 2 s after the change and applied 25 s after it counts 2 s to the
    acknowledgement and 30 s to "applied"; its settlement is not a second acknowledgement."""
    listing, _ = two_channels
    _attempt(listing, outcome="submitted", change_ago_s=40, acked_ago_s=38, latency=False)
    # The settlement: sent_at is the submission's, acked_at when it was found applied.
    _attempt(listing, outcome="applied", change_ago_s=40, acked_ago_s=15, sent_ago_s=38)

    latency = kpis.channel_sync_latency(channel_id=listing.channel_id, now=NOW)

    assert latency.to_acknowledged.samples == 1
    assert latency.to_acknowledged.p95_ms == about(2_000.0)
    assert latency.to_applied.samples == 1
    assert latency.to_applied.p95_ms == about(25_000.0)
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
    """Two buckets of a minute, from the start of the minute the window starts in: each
    has the p95 of its own pushes."""
    listing, _ = two_channels
    minute = NOW.replace(second=0)
    start = minute - dt.timedelta(minutes=2) + dt.timedelta(seconds=5)
    first_minute = int((NOW - minute).total_seconds()) + 110
    for seconds in (1, 2, 3):  # in the first minute
        _attempt(
            listing,
            outcome="applied",
            change_ago_s=first_minute + seconds,
            acked_ago_s=first_minute,
        )
    second_minute = int((NOW - minute).total_seconds()) + 50
    _attempt(
        listing, outcome="applied", change_ago_s=second_minute + 40, acked_ago_s=second_minute
    )

    series = kpis.latency_series(start=start, end=minute, bucket=dt.timedelta(minutes=1))

    points = series[listing.channel_id]
    assert [point.bucket_start for point in points] == [
        minute - dt.timedelta(minutes=2),
        minute - dt.timedelta(minutes=1),
    ]
    assert [point.samples for point in points] == [3, 1]
    assert points[0].p95_ms == about(2_900.0)  # 1 + 0.95*2 s
    assert points[1].p95_ms == about(40_000.0)


def test_latency_series_in_quarter_hours_reads_the_quarter_rows(two_channels) -> None:
    """Hourly buckets over two hours: each holds the pushes of its four quarter hours,
    the first starting on the quarter hour at or before the window's start."""
    listing, _ = two_channels
    hour = NOW.replace(minute=0, second=0)
    for minutes_before, seconds in ((100, 10), (70, 20), (30, 40), (5, 50)):
        acked_ago = int((NOW - hour).total_seconds()) + minutes_before * 60
        _attempt(
            listing, outcome="applied", change_ago_s=acked_ago + seconds, acked_ago_s=acked_ago
        )

    series = kpis.latency_series(
        start=hour - dt.timedelta(hours=2), end=hour, bucket=dt.timedelta(hours=1)
    )

    points = series[listing.channel_id]
    assert [point.bucket_start for point in points] == [
        hour - dt.timedelta(hours=2),
        hour - dt.timedelta(hours=1),
    ]
    assert [point.samples for point in points] == [2, 2]
    assert points[0].p95_ms == about(10_000 + 0.95 * 10_000)
    assert points[1].p95_ms == about(40_000 + 0.95 * 10_000)


# 60 s itself is amber but files into the bucket from 60 s up: read back as just over it.
@pytest.mark.parametrize("latency_ms", [1.0, 29_999.0, 30_000.0, 45_000.0, 59_999.0, 60_001.0])
def test_the_database_files_a_latency_in_the_bucket_python_reads_it_from(
    two_channels, latency_ms
) -> None:
    """The trigger's bucket (SQL) holds the latency between the edges
    ``latency_bucket_bounds`` gives (Python): both sides of the rollup agree, and the 30 s
    target and 60 s alert line are edges, so a single push's p95 keeps its colour."""
    listing, _ = two_channels
    moment = NOW - dt.timedelta(seconds=30)
    PushAttempt.objects.create(
        channel_id=listing.channel_id,
        listing=listing,
        target_quantity=1,
        outcome="applied",
        change_at=moment - dt.timedelta(milliseconds=latency_ms),
        sent_at=moment,
        acked_at=moment,
        latency_ms=latency_ms,
    )
    kpis.roll_up_pushes()
    rollup = PushRollup.objects.get(channel_id=listing.channel_id, span_s=60)
    [(bucket, pushes)] = rollup.applied_ms.items()

    low, high = kpis.latency_bucket_bounds(int(bucket))
    assert pushes == 1
    assert low <= latency_ms < high or (latency_ms == 1.0 and latency_ms < high)
    p95 = kpis.channel_sync_latency(channel_id=listing.channel_id, now=NOW).to_applied.p95_ms
    assert kpis.latency_status(p95) == kpis.latency_status(latency_ms)


# ---------------------------------------------------------------------------------------
# The other channel-side KPIs
# ---------------------------------------------------------------------------------------
from channels.models import (  # noqa: E402
    ChannelBreaker,
    ChannelOperation,
    DeadLetter,
    ListingSyncState,
    OversellIncident,
    PendingPush,
    WebhookReceipt,
)
from inventory import services as inventory_services  # noqa: E402
from inventory.models import EventSource  # noqa: E402

WINDOW_START = NOW - dt.timedelta(hours=1)


def _order(channel, sku, location, reference, quantity=1, *, source=EventSource.CHANNEL):
    return inventory_services.commit_order(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=quantity,
        context=factories.context(
            source=source, actor=channel.slug if channel else "", external_reference=reference
        ),
        allow_shortfall=True,
    )


@pytest.fixture
def stocked_channels(sku, location):
    factories.stock(sku, location, 100)
    first = factories.make_channel(name="First", locations=[location])
    second = factories.make_channel(name="Second", locations=[location])
    return first, second


def test_oversell_rate_counts_orders_with_an_incident_per_order(
    stocked_channels, sku, location
) -> None:
    """First: 4 orders (one of two lines), one oversold. Second: 1 order. The API: 1
    order. Overall 1 of 6 orders."""
    first, second = stocked_channels
    for reference in ("A", "B", "C"):
        _order(first, sku, location, reference)
    _order(first, sku, location, "C")  # a second line of order C
    event = _order(first, sku, location, "D")
    _order(second, sku, location, "A")
    _order(None, sku, location, "api-1", source=EventSource.API)
    OversellIncident.objects.create(
        channel=first, sku=sku, order_reference="D", shortfall=1, event=event
    )

    figures = kpis.channel_kpis(start=WINDOW_START, end=NOW + dt.timedelta(minutes=5))

    assert (figures[first.pk].oversell.orders, figures[first.pk].oversell.oversold_orders) == (
        4,
        1,
    )
    assert figures[first.pk].oversell.rate == 0.25
    assert figures[first.pk].oversell.status == kpis.Status.RED
    assert figures[second.pk].oversell.rate == 0.0
    assert figures[second.pk].oversell.status == kpis.Status.GREEN
    assert (figures[None].oversell.orders, figures[None].oversell.oversold_orders) == (6, 1)


def test_error_rate_counts_failed_and_refused_sends_only(stocked_channels, sku) -> None:
    """998 applied, 1 stale, 1 failed and shadow/throttled attempts (not sends): 1 error in
    1000 sends is 0.1 %, amber (the target is under 0.1 %)."""
    first, second = stocked_channels
    listing = factories.make_listing(channel=first, sku=sku)
    for _ in range(998):
        _attempt(listing, outcome="applied", change_ago_s=2, acked_ago_s=1)
    _attempt(listing, outcome="stale", change_ago_s=2, acked_ago_s=1)
    _attempt(listing, outcome="failed", change_ago_s=2, acked_ago_s=1, latency=False)
    _attempt(listing, outcome="shadow", change_ago_s=2, acked_ago_s=1, latency=False)
    _attempt(listing, outcome="throttled", change_ago_s=2, acked_ago_s=1, latency=False)

    figures = kpis.channel_kpis(start=WINDOW_START, end=NOW)

    assert (figures[first.pk].errors.sent, figures[first.pk].errors.errors) == (1000, 1)
    assert figures[first.pk].errors.rate == 0.001
    assert figures[first.pk].errors.status == kpis.Status.AMBER
    assert figures[second.pk].errors.rate is None
    assert figures[second.pk].errors.status == kpis.Status.GREY


def _receipt(channel, status, *, ago_s, key):
    receipt = WebhookReceipt.objects.create(
        channel=channel, topic="orders/create", dedupe_key=key, body=b"{}", status=status
    )
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        received_at=NOW - dt.timedelta(seconds=ago_s)
    )
    return receipt


def test_webhook_health_is_the_share_handled_of_those_due(stocked_channels) -> None:
    """6 handled, 1 failed, 1 quarantined, 1 waiting for 5 min (overdue), 1 just arrived
    (not due yet): 6 of 9 handled."""
    first, _ = stocked_channels
    statuses = ["processed"] * 4 + ["ignored", "awaiting_order", "failed", "quarantined"]
    for number, status in enumerate(statuses):
        _receipt(first, status, ago_s=600, key=f"k{number}")
    _receipt(first, "received", ago_s=300, key="overdue")
    _receipt(first, "received", ago_s=5, key="fresh")

    health = kpis.channel_kpis(start=WINDOW_START, end=NOW)[first.pk].webhooks

    assert (health.received, health.handled, health.troubled) == (10, 6, 3)
    assert health.share_healthy == round(6 / 9, 6)
    assert health.status == kpis.Status.RED


def test_uptime_counts_minutes_down_from_failures_receipts_and_an_open_breaker(
    stocked_channels, sku
) -> None:
    """Over 60 minutes: a minute whose only push failed, a minute with a failed and an
    applied push (up), a minute with a failed receipt, and a breaker open for the last 3
    minutes: 5 of 60 minutes down on the first channel; the second is down 1 minute (its
    failed push is in the same minute as the first's failed receipt); overall 5."""
    first, second = stocked_channels
    listing = factories.make_listing(channel=first, sku=sku)
    other = factories.make_listing(channel=second, sku=sku)
    end = NOW.replace(second=0)
    start = end - dt.timedelta(minutes=60)

    def at(minutes_before_end: int, second: int = 10) -> int:
        # seconds before NOW of a moment in that minute
        moment = end - dt.timedelta(minutes=minutes_before_end) + dt.timedelta(seconds=second)
        return int((NOW - moment).total_seconds())

    _attempt(listing, outcome="failed", change_ago_s=at(50), acked_ago_s=at(50), latency=False)
    _attempt(listing, outcome="failed", change_ago_s=at(40), acked_ago_s=at(40), latency=False)
    _attempt(listing, outcome="applied", change_ago_s=at(40, 20), acked_ago_s=at(40, 20))
    _receipt(first, "failed", ago_s=at(30), key="bad")
    _attempt(other, outcome="failed", change_ago_s=at(30), acked_ago_s=at(30), latency=False)
    ChannelBreaker.objects.create(
        channel=first,
        failures=5,
        failing_since=end - dt.timedelta(minutes=3),
        open_until=end + dt.timedelta(minutes=1),
    )

    figures = kpis.channel_kpis(start=start, end=end)

    assert (figures[first.pk].uptime.minutes, figures[first.pk].uptime.down_minutes) == (60, 5)
    assert figures[first.pk].uptime.share == round(55 / 60, 6)
    assert figures[first.pk].uptime.status == kpis.Status.RED
    assert figures[second.pk].uptime.down_minutes == 1
    assert figures[None].uptime.down_minutes == 5


def test_buffer_utilization_is_units_held_back_against_units_sold(
    stocked_channels, sku, location
) -> None:
    """ATS 100 less 10 sold = 90; the channel was last told 72: 18 held back of 90 at the
    snapshot; it sold the 10. Before any snapshot nothing is known of the units held back."""
    first, second = stocked_channels
    listing = factories.make_listing(channel=first, sku=sku)
    for reference in range(10):
        _order(first, sku, location, f"o{reference}")
    ListingSyncState.objects.update_or_create(
        listing=listing, defaults={"last_pushed_quantity": 72}
    )
    end = NOW + dt.timedelta(minutes=5)
    before = kpis.channel_kpis(start=WINDOW_START, end=end)[first.pk].buffer
    assert (before.taken_at, before.held_back_units, before.sold_units) == (None, 0, 10)

    assert channel_services.take_buffer_snapshots(now=NOW) == 2

    figures = kpis.channel_kpis(start=WINDOW_START, end=end)
    buffer = figures[first.pk].buffer
    assert (buffer.available_units, buffer.listed_units, buffer.held_back_units) == (90, 72, 18)
    assert buffer.sold_units == 10
    assert buffer.held_back_share == 0.2
    assert buffer.taken_at == NOW
    assert figures[second.pk].buffer.held_back_units == 0
    assert (figures[None].buffer.held_back_units, figures[None].buffer.sold_units) == (18, 10)


def test_channel_activity_counts_what_the_pipeline_holds(stocked_channels, sku) -> None:
    """Two owed (one claimed), an open and a replayed dead letter, a throttled answer, an
    open breaker, the last acknowledged push and the last operator action."""
    first, second = stocked_channels
    listings = [factories.make_listing(channel=first, sku=sku) for _ in range(2)]
    PendingPush.objects.filter(channel=first).delete()
    PendingPush.objects.create(listing=listings[0], channel=first)
    PendingPush.objects.create(
        listing=listings[1], channel=first, claimed_until=NOW + dt.timedelta(seconds=30)
    )
    for status in ("open", "replayed"):
        DeadLetter.objects.create(
            channel=first, listing=listings[0], target_quantity=1, status=status
        )
    _attempt(listings[0], outcome="throttled", change_ago_s=60, acked_ago_s=60, latency=False)
    newest = _attempt(listings[0], outcome="applied", change_ago_s=30, acked_ago_s=20)
    _attempt(listings[0], outcome="applied", change_ago_s=300, acked_ago_s=200)
    ChannelBreaker.objects.create(channel=first, failures=5, open_until=NOW + dt.timedelta(60))
    ChannelOperation.objects.create(channel=first, action="poll_now", actor="ann")
    latest = ChannelOperation.objects.create(channel=first, action="switch_mode", actor="bob")

    activity = kpis.channel_activity(channels=[first, second], now=NOW)

    row = activity[first.pk]
    assert (row.owed, row.in_flight, row.throttled_last_hour, row.open_dead_letters) == (
        2,
        1,
        1,
        1,
    )
    assert row.breaker_state == ChannelBreaker.State.OPEN
    assert row.last_success_at == newest.acked_at
    assert row.last_operation == latest
    empty = activity[second.pk]
    assert (empty.owed, empty.open_dead_letters, empty.last_success_at) == (0, 0, None)
    assert empty.breaker_state == ChannelBreaker.State.CLOSED


def test_throughput_has_every_minute_with_orders_and_pushes(stocked_channels, sku, location):
    """Three minutes: the last has one order (two lines) and one push (a shadow attempt is
    not a push); the others are present with zeros."""
    first, _ = stocked_channels
    listing = factories.make_listing(channel=first, sku=sku)
    end = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    _order(first, sku, location, "x")
    _order(first, sku, location, "x")  # the same order: counted once
    moment = end - dt.timedelta(seconds=30)
    for outcome in ("applied", "shadow"):
        PushAttempt.objects.create(
            channel=first,
            listing=listing,
            target_quantity=1,
            outcome=outcome,
            change_at=moment,
            sent_at=moment,
        )

    points = kpis.throughput_per_minute(start=end - dt.timedelta(minutes=3), end=end)

    assert [point.minute for point in points] == [
        end - dt.timedelta(minutes=minutes) for minutes in (3, 2, 1)
    ]
    assert [(point.orders, point.pushes) for point in points] == [(0, 0), (0, 0), (1, 1)]


def test_a_day_is_read_from_at_most_a_quarter_row_a_quarter_and_28_minute_rows(
    two_channels,
) -> None:
    """A push every minute for two days on a channel: the last 24 h (from a moment inside
    a minute and a quarter hour) is read from 95 quarter rows and the minute rows of the
    two partial quarters at its ends, not from 1,440 minute rows or the 2,880 pushes; the
    error rate read from them counts exactly the pushes of those whole minutes."""
    listing, _ = two_channels
    end = NOW.replace(minute=7, second=30)
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel_id=listing.channel_id,
            listing=listing,
            target_quantity=1,
            outcome="applied",
            change_at=end - dt.timedelta(minutes=minute, seconds=1),
            sent_at=end - dt.timedelta(minutes=minute),
            acked_at=end - dt.timedelta(minutes=minute),
            latency_ms=1_000.0,
        )
        for minute in range(1, 2881)
    )
    kpis.roll_up_pushes()
    window = kpis.RollupWindow(start=end - dt.timedelta(hours=24), end=end)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT span_s, count(*) FROM channels_pushrollup rollup "
            f"WHERE {kpis.RollupWindow.CONDITION} GROUP BY span_s ORDER BY span_s",
            window.params,
        )
        rows_read = dict(cursor.fetchall())

    # From hh:07 a day before: minute rows hh:07..hh:14, quarters hh:15 to hh:00 (95),
    # then minute rows hh:00..hh:06 (hh:07 today holds no push yet).
    assert rows_read == {60: 8 + 7, 900: 95}
    errors = kpis.error_rates(
        start=end - dt.timedelta(hours=24), end=end, channel_ids=[listing.channel_id]
    )
    # One push a minute, from hh:06:30 back to hh:07:30 a day before (the window's first
    # minute, counted whole).
    assert errors[listing.channel_id].sent == 1440


def test_the_rollup_keeps_what_the_longest_window_reaches(two_channels) -> None:
    """Pushes 33 days ago and 30 days ago: the purge deletes the older one's minute and
    quarter rows, keeps the other's, and leaves the attempts themselves alone."""
    listing, _ = two_channels
    for days in (33, 30):
        _attempt(
            listing,
            outcome="applied",
            change_ago_s=days * 86_400 + 1,
            acked_ago_s=days * 86_400,
        )

    assert channel_services.purge_push_rollup(now=NOW) == 2

    kept = PushRollup.objects.filter(channel_id=listing.channel_id)
    assert sorted(row.span_s for row in kept) == [60, 900]
    assert all(row.start > NOW - dt.timedelta(days=31) for row in kept)
    assert PushAttempt.objects.filter(listing=listing).count() == 2
    window = kpis.LONGEST_KPI_WINDOW
    assert (
        kpis.error_rates(start=NOW - window, end=NOW, channel_ids=[listing.channel_id])[
            listing.channel_id
        ].sent
        == 1
    )
