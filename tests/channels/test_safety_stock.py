"""The safety-stock calculator: measured velocity and latency in, a buffer rule out."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from channels import measurements, safety_stock
from channels.models import BufferRule, PushAttempt
from inventory import services as inventory_services
from inventory.models import InventoryEvent
from nventory import permissions
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


def _sell(sku, location, quantity: int, *, minutes_ago: float) -> None:
    """One order through the stock service, then moved back in time (known ledger data)."""
    event = inventory_services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=quantity, context=factories.context()
    )
    InventoryEvent.objects.filter(pk=event.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago)
    )


def _pushes(channel, listing, latencies_ms: list[float]) -> None:
    now = timezone.now()
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel=channel,
            listing=listing,
            target_quantity=1,
            outcome=PushAttempt.Outcome.APPLIED,
            change_at=now,
            sent_at=now,
            acked_at=now,
            latency_ms=latency,
        )
        for latency in latencies_ms
    )


@pytest.fixture
def selling(sku, location):
    factories.stock(sku, location, 1000)
    channel = factories.make_channel(locations=[location])
    listing = factories.make_listing(channel=channel, sku=sku)
    return channel, listing


def test_peak_velocity_is_the_busiest_window_in_the_ledger(sku, location) -> None:
    """Sales spread over three windows: the peak is the window that sold most."""
    factories.stock(sku, location, 100)
    _sell(sku, location, 3, minutes_ago=120)
    _sell(sku, location, 4, minutes_ago=120)
    _sell(sku, location, 9, minutes_ago=60 * 24)
    _sell(sku, location, 2, minutes_ago=60 * 24 * 40)  # before the look-back
    velocity = measurements.peak_sales_velocity(sku_id=sku.pk)
    assert velocity.units == 9
    assert velocity.units_per_s == pytest.approx(9 / 900)


def test_latency_p95_is_taken_per_channel(selling, location, sku) -> None:
    channel, listing = selling
    other = factories.make_channel(locations=[location])
    other_listing = factories.make_listing(channel=other, sku=sku)
    _pushes(channel, listing, [float(ms) for ms in range(101)])  # p95: exactly 95
    _pushes(other, other_listing, [5000.0] * 10)
    latencies = measurements.latency_p95_by_channel()
    assert latencies[channel.pk].p95_ms == pytest.approx(95.0)
    assert latencies[channel.pk].pushes == 101
    assert latencies[other.pk].p95_ms == pytest.approx(5000.0)


def test_recommendation_holds_the_exposure_times_the_tolerance(selling, sku, location) -> None:
    """90 units in the busiest 15 minutes (0.1 unit/s) with a 20 s p95: 2 units exposed;
    balanced holds 2 x 2 = 4 units and 10 %."""
    channel, listing = selling
    _sell(sku, location, 90, minutes_ago=30)
    _pushes(channel, listing, [20_000.0] * 20)
    recommendation = safety_stock.recommend_buffer(sku=sku, channel=channel)
    assert recommendation.tolerance == safety_stock.RiskTolerance.BALANCED
    assert recommendation.exposure_units == pytest.approx(2.0)
    assert recommendation.fixed_units == 4
    assert recommendation.percent == Decimal(10)
    # ATS 1000 - 90 = 910: floor(910 x 0.9) - 4 = 815.
    assert recommendation.ats == 910
    assert recommendation.listed_now == 910
    assert recommendation.listed_after == 815
    assert len(recommendation.steps) == 6
    cautious = safety_stock.recommend_buffer(
        sku=sku, channel=channel, tolerance=safety_stock.RiskTolerance.CAUTIOUS
    )
    assert (cautious.percent, cautious.fixed_units) == (Decimal(15), 6)


def test_an_unmeasured_channel_is_assumed_at_the_alert_threshold(selling, sku, location) -> None:
    channel, _listing = selling
    _sell(sku, location, 9, minutes_ago=5)  # 0.01 unit/s x 60 s = 0.6 units
    recommendation = safety_stock.recommend_buffer(
        sku=sku, channel=channel, tolerance=safety_stock.RiskTolerance.PROVEN
    )
    assert not recommendation.latency_measured
    assert recommendation.latency_p95_ms == safety_stock.UNMEASURED_LATENCY_MS
    assert recommendation.fixed_units == 1


def test_applying_saves_the_rule_with_who_and_why_in_its_history(selling, sku, location) -> None:
    channel, listing = selling
    _sell(sku, location, 90, minutes_ago=30)
    _pushes(channel, listing, [20_000.0] * 20)
    manager = make_operator(permissions.EDIT_BUFFERS)
    rule = safety_stock.apply_recommended_buffer(
        actor=manager, sku_id=sku.pk, channel_id=channel.pk
    )
    assert (rule.percent, rule.fixed_units) == (Decimal(10), 4)
    entry = rule.history.latest()
    assert entry.history_user == manager
    assert entry.history_change_reason.startswith("Safety-stock calculator (balanced)")
    # A second click with the same figures changes nothing and signs nothing new.
    safety_stock.apply_recommended_buffer(actor=manager, sku_id=sku.pk, channel_id=channel.pk)
    assert rule.history.count() == 1


def test_applying_changes_an_existing_rule_and_keeps_its_cap(selling, sku, location) -> None:
    channel, _listing = selling
    factories.make_buffer_rule(channel=channel, sku=sku, percent=Decimal(30), max_cap=50)
    manager = make_operator(permissions.EDIT_BUFFERS)
    rule = safety_stock.apply_recommended_buffer(
        actor=manager,
        sku_id=sku.pk,
        channel_id=channel.pk,
        tolerance=safety_stock.RiskTolerance.PROVEN,
    )
    assert BufferRule.objects.filter(channel=channel, sku=sku).count() == 1
    assert (rule.percent, rule.fixed_units, rule.max_cap) == (Decimal(5), 0, 50)
    assert rule.history.latest().history_user == manager


def test_applying_needs_the_edit_buffers_permission(selling, sku) -> None:
    channel, _listing = selling
    viewer = make_operator()
    with pytest.raises(PermissionDenied):
        safety_stock.apply_recommended_buffer(actor=viewer, sku_id=sku.pk, channel_id=channel.pk)
    assert not BufferRule.objects.exists()
