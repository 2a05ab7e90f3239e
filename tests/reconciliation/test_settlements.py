"""Settling a discrepancy: the channel's figure taken as a stock adjustment (once, through
the inventory service), or the master's figure pushed; who settled it is recorded."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from channels.models import PendingPush
from inventory import services as inventory_services
from inventory.models import EventKind, EventSource, InventoryEvent, StockLevel
from nventory import permissions
from reconciliation import selectors, services
from reconciliation.models import Discrepancy, ReconciliationRun
from tests import factories
from tests.bundles.helpers import make_bundle

pytestmark = pytest.mark.django_db


@pytest.fixture
def warehouse():
    return factories.make_location()


@pytest.fixture
def channel(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shop")


@pytest.fixture
def shirt(warehouse):
    sku = factories.make_sku(code="TSHIRT-001")
    factories.stock(sku, warehouse, 10)
    return sku


@pytest.fixture
def listing(channel, shirt):
    return factories.make_listing(channel=channel, sku=shirt, external_id="1001")


@pytest.fixture
def settler():
    return factories.make_user(permissions.SETTLE_DISCREPANCIES, username="sam")


def discrepancy(listing, *, expected: int = 10, actual: int | None = 7) -> Discrepancy:
    run = ReconciliationRun.objects.create(
        channel=listing.channel, kind="poll", status="done", channel_mode="shadow"
    )
    return Discrepancy.objects.create(
        run=run,
        channel=listing.channel,
        listing=listing,
        sku=listing.sku,
        expected=expected,
        actual=actual,
        cause=Discrepancy.Cause.MANUAL_EDIT,
    )


def on_hand(sku, location) -> int:
    return StockLevel.objects.get(sku=sku, location=location).on_hand


def test_accepting_the_channels_figure_adjusts_on_hand_once(listing, shirt, warehouse, settler):
    found = discrepancy(listing, expected=10, actual=7)

    settled = services.accept_channel_figure(discrepancy_id=found.pk, actor=settler)

    assert on_hand(shirt, warehouse) == 7
    event = settled.adjustment_event
    assert event is not None
    assert (event.kind, event.delta_on_hand, event.source, event.actor) == (
        EventKind.ADJUSTMENT,
        -3,
        EventSource.RECONCILIATION,
        "sam",
    )
    assert "showed 7" in event.reason
    assert (settled.settlement, settled.settled_by) == (
        Discrepancy.Settlement.ACCEPTED_CHANNEL,
        "sam",
    )
    with pytest.raises(services.DiscrepancySettled):
        services.accept_channel_figure(discrepancy_id=found.pk, actor=settler)
    with pytest.raises(services.DiscrepancySettled):
        services.push_master_figure(discrepancy_id=found.pk, actor=settler)
    assert on_hand(shirt, warehouse) == 7
    assert InventoryEvent.objects.filter(kind=EventKind.ADJUSTMENT).count() == 1
    assert list(selectors.discrepancies_to_settle()) == []


def test_a_channel_showing_more_raises_on_hand_at_the_chosen_location(
    channel, listing, shirt, warehouse, settler
):
    from channels import services as channel_services

    backroom = factories.make_location()
    channel_services.set_channel_locations(
        channel_id=channel.pk, location_ids=[warehouse.pk, backroom.pk]
    )
    found = discrepancy(listing, expected=10, actual=12)

    services.accept_channel_figure(discrepancy_id=found.pk, location_id=backroom.pk, actor=settler)

    assert (on_hand(shirt, warehouse), on_hand(shirt, backroom)) == (10, 2)


def test_a_superseded_discrepancy_is_not_settled_by_its_old_figure(listing, settler):
    older = discrepancy(listing, actual=7)
    newer = discrepancy(listing, actual=9)
    Discrepancy.objects.filter(pk=older.pk).update(
        detected_at=newer.detected_at.replace(year=2020)
    )

    with pytest.raises(services.DiscrepancySuperseded):
        services.accept_channel_figure(discrepancy_id=older.pk, actor=settler)
    assert list(selectors.discrepancies_to_settle()) == [newer]


def test_no_figure_to_take_from_an_item_missing_on_the_channel_or_a_bundle(
    channel, listing, shirt, warehouse, settler
):
    with pytest.raises(services.ChannelFigureUnusable):
        services.accept_channel_figure(
            discrepancy_id=discrepancy(listing, actual=None).pk, actor=settler
        )
    bundle = make_bundle((shirt, 2), code="SHIRT-PAIR")
    bundle_listing = factories.make_listing(channel=channel, sku=bundle, external_id="2002")
    with pytest.raises(services.ChannelFigureUnusable):
        services.accept_channel_figure(
            discrepancy_id=discrepancy(bundle_listing, expected=5, actual=3).pk, actor=settler
        )
    assert on_hand(shirt, warehouse) == 10


def test_a_decrease_beyond_what_is_available_is_refused(listing, shirt, warehouse, settler):
    inventory_services.commit_order(
        sku_id=shirt.pk, location_id=warehouse.pk, quantity=8, context=factories.context()
    )
    found = discrepancy(listing, expected=10, actual=1)
    with pytest.raises(inventory_services.InsufficientStock):
        services.accept_channel_figure(discrepancy_id=found.pk, actor=settler)
    found.refresh_from_db()
    assert found.settlement == ""


def test_pushing_the_masters_figure_owes_the_listing_a_push(listing, settler):
    PendingPush.objects.all().delete()
    found = discrepancy(listing)

    settled = services.push_master_figure(discrepancy_id=found.pk, actor=settler)

    assert PendingPush.objects.filter(listing=listing).exists()
    assert (settled.settlement, settled.settled_by) == (
        Discrepancy.Settlement.PUSHED_MASTER,
        "sam",
    )
    assert settled.adjustment_event is None


def test_settling_needs_its_permission(listing, shirt, warehouse):
    viewer = factories.make_user()
    found = discrepancy(listing)
    with pytest.raises(PermissionDenied):
        services.accept_channel_figure(discrepancy_id=found.pk, actor=viewer)
    with pytest.raises(PermissionDenied):
        services.push_master_figure(discrepancy_id=found.pk, actor=viewer)
    assert on_hand(shirt, warehouse) == 10
    assert Discrepancy.objects.get(pk=found.pk).settlement == ""
