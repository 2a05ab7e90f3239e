"""The velocity guard: a SKU selling faster than a channel's limit is held back more there.

Known data: a limit of 1 unit a minute measured over 600 s (10 units in the window), a
rise covering 30 s of the measured rate, held 300 s. The sales of a test take well under a
minute, so their rate is measured over a tenth of the window (60 s): 11 units sold is 6
held back. Sales are committed as the channel's ingest commits them (the ledger is what the
guard reads).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from channels import selectors, services
from channels.buffers import BufferRuleValues, listed_quantity, velocity_rise
from channels.models import BufferRule, PendingPush
from channels.pipeline import velocity
from inventory import services as inventory_services
from inventory.models import EventSource
from tests import factories
from tests.channels.test_ingest import deliver, order

pytestmark = pytest.mark.django_db

_orders = itertools.count(1)


@pytest.fixture(autouse=True)
def guard_settings(settings):
    settings.VELOCITY_GUARD_UNITS_PER_MIN = 1
    settings.VELOCITY_GUARD_WINDOW_S = 600
    settings.VELOCITY_GUARD_COVER_S = 30
    settings.VELOCITY_GUARD_HOLD_S = 300


@pytest.fixture
def warehouse():
    return factories.make_location()


@pytest.fixture
def tiktok(warehouse):
    return factories.make_channel(locations=[warehouse], slug="tiktok")


@pytest.fixture
def shopify(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shopify")


@pytest.fixture
def lipstick(warehouse):
    sku = factories.make_sku(code="LIP-001")
    factories.stock(sku, warehouse, 100)
    return sku


@pytest.fixture
def tiktok_listing(tiktok, lipstick):
    return factories.make_listing(channel=tiktok, sku=lipstick, external_id="1729592969712207013")


@pytest.fixture
def shopify_listing(shopify, lipstick):
    return factories.make_listing(
        channel=shopify,
        sku=lipstick,
        external_id="30322695",
        extra_identifiers={"variant_id": "123456789"},
    )


def sell(channel, sku, location, units: int) -> None:
    """``units`` one-unit orders of the channel, committed as its ingest commits them."""
    for number in itertools.islice(_orders, units):
        inventory_services.commit_order(
            sku_id=sku.pk,
            location_id=location.pk,
            quantity=1,
            context=inventory_services.EventContext(
                idempotency_key=f"{channel.slug}:order:{number}:commit",
                source=EventSource.CHANNEL,
                actor=channel.slug,
                external_reference=f"order-{number}",
            ),
            allow_shortfall=True,
        )


def sku_rule(channel, sku) -> BufferRule | None:
    return BufferRule.objects.filter(channel=channel, sku=sku, listing__isnull=True).first()


def raised_rule(channel, sku) -> BufferRule:
    rule = sku_rule(channel, sku)
    assert rule is not None
    return rule


# --- the arithmetic ------------------------------------------------------------------------


def test_rise_covers_the_measured_rate_for_the_cover_time_rounded_up():
    assert velocity_rise(units_sold=11, window_s=60, cover_s=30, current=0) == 6


def test_a_higher_rate_raises_by_at_least_half_the_current_rise():
    assert velocity_rise(units_sold=13, window_s=60, cover_s=30, current=6) == 9
    assert velocity_rise(units_sold=40, window_s=60, cover_s=30, current=6) == 20


def test_a_lower_rate_never_lowers_the_rise_here():
    assert velocity_rise(units_sold=2, window_s=60, cover_s=30, current=9) == 9


def test_the_rise_is_held_back_after_the_fixed_units_and_before_the_cap():
    now = timezone.now()
    rule = BufferRuleValues(percent=Decimal(10), fixed_units=5, max_cap=50, velocity_units=40)
    # floor(75 x 0.9) = 67, - 5 = 62, - 40 = 22, under the cap of 50.
    assert listed_quantity(ats=75, rule=rule, out_of_stock_threshold=0, now=now) == 22
    # Near the end of the stock the rise takes the listing to 0, cap or not.
    assert listed_quantity(ats=30, rule=rule, out_of_stock_threshold=0, now=now) == 0


# --- rising --------------------------------------------------------------------------------


def test_sales_within_the_limit_raise_nothing(tiktok, lipstick, warehouse, tiktok_listing):
    sell(tiktok, lipstick, warehouse, 10)

    assert velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk]) == []
    assert sku_rule(tiktok, lipstick) is None


def test_sales_over_the_limit_raise_the_channels_buffer_for_the_sku_with_its_reason(
    tiktok, shopify, lipstick, warehouse, tiktok_listing, shopify_listing
):
    sell(tiktok, lipstick, warehouse, 11)
    PendingPush.objects.all().delete()

    raised = velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    rule = sku_rule(tiktok, lipstick)
    assert rule is not None and raised == [rule.pk]
    assert (rule.velocity_units, rule.velocity_only) == (6, True)
    assert rule.velocity_until is not None and rule.velocity_until > timezone.now()
    (created,) = rule.history.all()
    assert created.history_change_reason.startswith(
        "Velocity guard: 11 units sold in 60 s, limit 10 in 600 s: holds back 6 (was 0)"
    )
    # The SKU's listings on the spiking channel owe a push; the other channel's do not.
    assert set(PendingPush.objects.values_list("listing_id", flat=True)) == {tiktok_listing.pk}
    # ATS 89, minus the rise of 6; Shopify lists the ATS.
    assert selectors.explain_listing(listing=tiktok_listing).listed == 83
    assert selectors.explain_listing(listing=shopify_listing).listed == 89
    assert sku_rule(shopify, lipstick) is None


def test_a_rule_that_holds_only_the_rise_leaves_the_channels_rule_in_force(
    tiktok, lipstick, warehouse, tiktok_listing
):
    factories.make_buffer_rule(channel=tiktok, percent=Decimal(10))
    sell(tiktok, lipstick, warehouse, 11)

    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    governing = selectors.effective_buffer_rule(listing=tiktok_listing)
    assert governing is not None and governing.sku_id is None
    explanation = selectors.explain_listing(listing=tiktok_listing)
    # floor(89 x 0.9) = 80, minus the rise of 6.
    assert explanation.listed == 74
    assert "minus 6 units held by the velocity guard" in [s.label for s in explanation.steps]


def test_the_rise_applies_under_a_listing_override_too(
    tiktok, lipstick, warehouse, tiktok_listing
):
    factories.make_buffer_rule(channel=tiktok, listing=tiktok_listing, fixed_units=3)
    sell(tiktok, lipstick, warehouse, 11)

    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    assert selectors.explain_listing(listing=tiktok_listing).listed == 89 - 3 - 6


def test_an_operators_sku_rule_takes_the_rise_and_keeps_its_own_numbers(
    tiktok, lipstick, warehouse, tiktok_listing
):
    own = factories.make_buffer_rule(channel=tiktok, sku=lipstick, fixed_units=2)
    sell(tiktok, lipstick, warehouse, 11)

    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    own.refresh_from_db()
    assert (own.fixed_units, own.velocity_units, own.velocity_only) == (2, 6, False)
    assert selectors.explain_listing(listing=tiktok_listing).listed == 89 - 2 - 6
    assert own.history.first().history_change_reason.startswith("Velocity guard: 11 units")


def test_faster_sales_raise_it_in_steps_and_each_step_is_in_the_history(
    tiktok, lipstick, warehouse, tiktok_listing
):
    for _ in range(15):
        sell(tiktok, lipstick, warehouse, 1)
        velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    rule = raised_rule(tiktok, lipstick)
    # 11 sold: 6; 13 sold needs 7, raised to 9 (half again); 15 sold needs 8: held at 9.
    assert rule.velocity_units == 9
    assert [h.velocity_units for h in rule.history.order_by("history_date")] == [6, 9]


def test_a_channel_with_the_guard_turned_off_is_not_raised(
    tiktok, lipstick, warehouse, tiktok_listing
):
    services.update_channel(
        channel_id=tiktok.pk,
        fields=dataclasses.replace(
            services.ChannelFields.of(tiktok), platform_settings={"velocity_units_per_min": 0}
        ),
    )
    tiktok.refresh_from_db()
    sell(tiktok, lipstick, warehouse, 50)

    assert velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk]) == []


def test_only_the_channels_own_orders_count(tiktok, shopify, lipstick, warehouse, tiktok_listing):
    sell(shopify, lipstick, warehouse, 30)
    sell(tiktok, lipstick, warehouse, 5)

    assert velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk]) == []


def test_ingest_observes_the_sale_once_it_is_committed(
    shopify, lipstick, shopify_listing, django_capture_on_commit_callbacks, settings
):
    settings.VELOCITY_GUARD_UNITS_PER_MIN = 0.2
    with django_capture_on_commit_callbacks(execute=True):
        deliver(
            shopify,
            "orders/create",
            order((111, 3, {"variant_id": 123456789, "sku": "LIP-001"})),
        )

    rule = sku_rule(shopify, lipstick)
    # 3 sold over a limit of 2 in the window: 30 s of 3 in 60 s is 2 units (1.5 rounded up).
    assert rule is not None and rule.velocity_units == 2


# --- falling back ----------------------------------------------------------------------------


def test_the_rise_falls_back_once_the_spike_is_over_and_the_holder_goes(
    tiktok, lipstick, warehouse, tiktok_listing
):
    sell(tiktok, lipstick, warehouse, 11)
    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])
    rule = raised_rule(tiktok, lipstick)
    PendingPush.objects.all().delete()

    assert velocity.lower_spent_rises(now=timezone.now()) == 0  # held 300 s
    assert rule.velocity_until is not None
    # Past the hold, and the sales out of the window.
    later = rule.velocity_until + dt.timedelta(seconds=600)
    assert velocity.lower_spent_rises(now=later) == 1

    assert sku_rule(tiktok, lipstick) is None
    gone = BufferRule.history.filter(id=rule.pk).order_by("-history_date").first()
    assert gone.history_type == "-"
    assert gone.history_change_reason == (
        "Velocity guard: 0 units sold in 600 s, limit 10: the rise of 6 falls back"
    )
    assert list(PendingPush.objects.values_list("listing_id", flat=True)) == [tiktok_listing.pk]
    assert selectors.explain_listing(listing=tiktok_listing).listed == 89


def test_an_operators_rule_keeps_its_numbers_when_the_rise_falls(
    tiktok, lipstick, warehouse, tiktok_listing
):
    own = factories.make_buffer_rule(channel=tiktok, sku=lipstick, fixed_units=2)
    sell(tiktok, lipstick, warehouse, 11)
    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])
    own.refresh_from_db()

    velocity.lower_spent_rises(now=own.velocity_until + dt.timedelta(seconds=600))

    own.refresh_from_db()
    assert (own.fixed_units, own.velocity_units, own.velocity_until) == (2, 0, None)


def test_a_rise_still_needed_is_held_longer_without_a_history_row(
    tiktok, lipstick, warehouse, tiktok_listing, settings
):
    settings.VELOCITY_GUARD_HOLD_S = 0
    sell(tiktok, lipstick, warehouse, 11)
    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])
    rule = raised_rule(tiktok, lipstick)

    # The sales are still inside the window: the spike is not over.
    assert velocity.lower_spent_rises(now=timezone.now() + dt.timedelta(seconds=1)) == 0

    rule.refresh_from_db()
    assert rule.velocity_units == 6
    assert rule.history.count() == 1


# --- operators and the guard's rules ---------------------------------------------------------


def test_an_operator_adding_a_sku_rule_takes_over_the_guards_holder_and_its_rise(
    tiktok, lipstick, warehouse, tiktok_listing
):
    sell(tiktok, lipstick, warehouse, 11)
    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])
    holder = raised_rule(tiktok, lipstick)

    rule = factories.make_buffer_rule(channel=tiktok, sku=lipstick, percent=Decimal(50))

    assert rule.pk == holder.pk
    assert (rule.velocity_only, rule.velocity_units) == (False, 6)
    # floor(89 x 0.5) = 44, minus the rise.
    assert selectors.explain_listing(listing=tiktok_listing).listed == 38


def test_moving_a_raised_rule_to_another_scope_leaves_the_rise_behind(
    tiktok, lipstick, warehouse, tiktok_listing
):
    own = factories.make_buffer_rule(channel=tiktok, sku=lipstick, fixed_units=2)
    sell(tiktok, lipstick, warehouse, 11)
    velocity.observe_sales(channel=tiktok, sku_ids=[lipstick.pk])

    moved = services.update_buffer_rule(
        rule_id=own.pk,
        fields=services.BufferRuleFields(
            channel_id=tiktok.pk, listing_id=tiktok_listing.pk, fixed_units=2
        ),
    )

    assert (moved.velocity_units, moved.velocity_until) == (0, None)


def test_a_long_channel_slug_still_fits_the_history_reason(lipstick, warehouse):
    channel = factories.make_channel(locations=[warehouse], slug="s" * 64)
    factories.make_listing(channel=channel, sku=lipstick)
    sell(channel, lipstick, warehouse, 11)

    velocity.observe_sales(channel=channel, sku_ids=[lipstick.pk])

    assert raised_rule(channel, lipstick).velocity_units == 6
