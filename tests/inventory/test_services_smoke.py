import pytest

from inventory import services
from inventory.models import InventoryEvent, StockLevel
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
