"""commit_order inside a caller's transaction, with and without the replay savepoint."""

import pytest
from django.db import IntegrityError, transaction

from inventory import services
from inventory.models import InventoryEvent, StockLevel
from tests import factories


@pytest.fixture
def stocked(db):
    sku, location = factories.make_sku(), factories.make_location()
    factories.stock(sku, location, 10)
    return sku, location


def _commit(sku, location, key: str, **options):
    return services.commit_order(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=1,
        context=services.EventContext(idempotency_key=key),
        **options,
    )


def test_a_replay_inside_a_transaction_is_survived_by_default(stocked):
    sku, location = stocked
    first = _commit(sku, location, "order-1")
    with transaction.atomic():
        again = _commit(sku, location, "order-1")
        assert again.pk == first.pk
        assert StockLevel.objects.get(sku=sku).committed == 1  # still usable


def test_a_caller_that_checked_the_key_commits_without_a_savepoint(stocked):
    sku, location = stocked
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        _commit(sku, location, "order-2", key_checked_under_lock=True)
    assert not any("SAVEPOINT" in query["sql"] for query in queries.captured_queries)
    assert StockLevel.objects.get(sku=sku).committed == 1


def test_a_replay_the_caller_said_could_not_happen_fails_its_transaction(stocked):
    sku, location = stocked
    _commit(sku, location, "order-3")
    with pytest.raises(IntegrityError), transaction.atomic():
        _commit(sku, location, "order-3", key_checked_under_lock=True)
    assert InventoryEvent.objects.filter(idempotency_key="order-3").count() == 1
    assert StockLevel.objects.get(sku=sku).committed == 1
