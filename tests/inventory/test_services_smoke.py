import datetime as dt

import pytest
from django.utils import timezone

from inventory import services
from inventory.models import InventoryEvent, Reservation, StockLevel
from nventory.errors import Conflict, NotFound
from tests import factories


def test_receive_then_commit_updates_levels_and_ledger(sku, location):
    factories.stock(sku, location, 5)
    event = services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=2, context=factories.context()
    )
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.on_hand, level.committed, level.available) == (5, 2, 3)
    assert event.pk and event.committed_after == 2
    assert InventoryEvent.objects.filter(sku=sku).count() == 2


def test_commit_beyond_available_is_refused_and_changes_nothing(sku, location):
    factories.stock(sku, location, 1)
    with pytest.raises(services.InsufficientStock):
        services.commit_order(
            sku_id=sku.pk, location_id=location.pk, quantity=2, context=factories.context()
        )
    level = StockLevel.objects.get(sku=sku, location=location)
    assert level.committed == 0
    assert InventoryEvent.objects.filter(sku=sku).count() == 1


def test_confirming_a_reservation_past_its_expiry_is_refused(sku, location):
    factories.stock(sku, location, 3)
    reservation = services.reserve_stock(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=2,
        ttl_s=60,
        context=factories.context(),
    )
    Reservation.objects.filter(pk=reservation.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with pytest.raises(Conflict):
        services.confirm_reservation(reservation_id=reservation.pk, context=factories.context())
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.committed, level.reserved) == (0, 2)
    assert services.expire_reservations() == 1
    level.refresh_from_db()
    assert level.reserved == 0


def test_replayed_commit_changes_stock_once(sku, location):
    factories.stock(sku, location, 5)
    context = factories.context()
    first = services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=2, context=context
    )
    again = services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=2, context=context
    )
    assert again.pk == first.pk
    assert StockLevel.objects.get(sku=sku, location=location).committed == 2
    with pytest.raises(services.IdempotencyKeyReused):
        services.commit_order(sku_id=sku.pk, location_id=location.pk, quantity=3, context=context)


def test_shortfall_is_recorded_when_allowed(sku, location):
    factories.stock(sku, location, 1)
    event = services.commit_order(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=3,
        context=factories.context(),
        allow_shortfall=True,
    )
    assert event.shortfall == 2
    assert StockLevel.objects.get(sku=sku, location=location).available == -2


@pytest.mark.django_db
def test_ending_an_unknown_reservation_is_not_found():
    with pytest.raises(NotFound):
        services.release_reservation(reservation_id=987654321, context=factories.context())
