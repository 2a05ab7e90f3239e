"""Read-side selectors: SKU and location look-ups, stock per location, ledger filters."""

from __future__ import annotations

import pytest

from inventory import selectors, services
from inventory.models import EventKind, InventoryEvent
from nventory.errors import NotFound
from tests import factories


def test_sku_list_searches_code_and_name_in_any_case_ordered_by_code(db):
    factories.make_sku(code="TEE-RED", name="Red shirt")
    factories.make_sku(code="MUG-1", name="Coffee mug")
    factories.make_sku(code="CAP-9", name="Tee cap")

    assert [s.code for s in selectors.sku_list()] == ["CAP-9", "MUG-1", "TEE-RED"]
    assert [s.code for s in selectors.sku_list(search="tEe")] == ["CAP-9", "TEE-RED"]
    assert [s.code for s in selectors.sku_list(search="MUG")] == ["MUG-1"]
    assert list(selectors.sku_list(search="nothing")) == []


def test_sku_and_location_by_code_find_the_row_or_raise_not_found(sku, location):
    assert selectors.sku_by_code(code=sku.code) == sku
    assert selectors.location_by_code(code=location.code) == location
    with pytest.raises(NotFound, match="SKU 'NOPE'"):
        selectors.sku_by_code(code="NOPE")
    with pytest.raises(NotFound, match="Location 'NOPE'"):
        selectors.location_by_code(code="NOPE")


def test_location_list_is_ordered_by_code(db):
    factories.make_location(code="B")
    factories.make_location(code="A")
    assert [location.code for location in selectors.location_list()] == ["A", "B"]


def test_sku_stock_has_a_row_per_location_and_the_totals(sku, location):
    store = factories.make_location(code="ZZ-STORE", name="Store")
    factories.stock(sku, location, 10)
    factories.stock(sku, store, 4)
    services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=6, context=factories.context()
    )
    services.reserve_stock(
        sku_id=sku.pk, location_id=store.pk, quantity=3, context=factories.context()
    )
    other_sku = factories.make_sku()
    factories.stock(other_sku, location, 100)

    stock = selectors.sku_stock(sku=sku)

    assert stock.sku_code == sku.code
    assert [
        (row.location_code, row.on_hand, row.committed, row.reserved, row.available)
        for row in stock.locations
    ] == [(location.code, 10, 6, 0, 4), ("ZZ-STORE", 4, 0, 3, 1)]
    assert stock.locations[1].location_name == "Store"
    totals = stock.totals
    assert (totals.on_hand, totals.committed, totals.reserved, totals.available) == (14, 6, 3, 5)


def test_sku_stock_of_a_sku_never_stocked_is_empty_with_zero_totals(sku):
    stock = selectors.sku_stock(sku=sku)
    assert stock.locations == ()
    assert (stock.totals.on_hand, stock.totals.available) == (0, 0)


def test_ledger_events_filter_by_sku_location_kind_and_reference_newest_first(sku, location):
    other_location = factories.make_location()
    other_sku = factories.make_sku()
    factories.stock(sku, location, 5)
    factories.stock(sku, other_location, 5)
    factories.stock(other_sku, location, 5)
    services.commit_order(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=1,
        context=factories.context(external_reference="SO-7"),
    )

    def kinds(**filters) -> list[tuple[int, int, str]]:
        return [(e.sku_id, e.location_id, e.kind) for e in selectors.ledger_events(**filters)]

    assert kinds(sku_id=sku.pk) == [
        (sku.pk, location.pk, "order_committed"),
        (sku.pk, other_location.pk, "receipt"),
        (sku.pk, location.pk, "receipt"),
    ]
    assert kinds(location_id=location.pk, kind=EventKind.RECEIPT) == [
        (other_sku.pk, location.pk, "receipt"),
        (sku.pk, location.pk, "receipt"),
    ]
    assert kinds(external_reference="SO-7") == [(sku.pk, location.pk, "order_committed")]
    assert len(kinds()) == 4


@pytest.mark.django_db(transaction=True)
def test_ledger_events_since_is_inclusive_and_until_exclusive():
    """Each event commits on its own here, so the three have distinct created_at."""
    sku, location = factories.make_sku(), factories.make_location()
    for _ in range(3):
        factories.stock(sku, location, 1)
    first, second, third = InventoryEvent.objects.order_by("id")
    assert first.created_at < second.created_at < third.created_at

    def ids(**filters) -> list[int]:
        return [event.pk for event in selectors.ledger_events(**filters)]

    assert ids(since=second.created_at) == [third.pk, second.pk]
    assert ids(until=second.created_at) == [first.pk]
    assert ids(since=first.created_at, until=third.created_at) == [second.pk, first.pk]


def test_reservation_by_id_finds_the_hold_or_raises_not_found(sku, location):
    factories.stock(sku, location, 2)
    reservation = services.reserve_stock(
        sku_id=sku.pk, location_id=location.pk, quantity=1, context=factories.context()
    )
    found = selectors.reservation_by_id(reservation_id=reservation.pk)
    assert (found.pk, found.sku.code, found.quantity) == (reservation.pk, sku.code, 1)
    with pytest.raises(NotFound):
        selectors.reservation_by_id(reservation_id=reservation.pk + 1000)
