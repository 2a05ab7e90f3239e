"""Sales owing pushes and pushes settling them, on the same outbox rows at the same time.

A sale's outbox trigger takes the rows of the listings it affects in listing order; a push
run's writes of several rows (letting claims go, giving tries back, settling) take them in
that order too. Out of order, the two deadlock, and PostgreSQL ends one of them: the
reservation API answered 500 under the load bench. Real threads, each on its own
connection; the rows are created so that their ids run against their listings' order.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import OperationalError, connection

from channels.models import PendingPush
from channels.pipeline import push
from inventory import services
from tests import factories

ROUNDS = 150

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sales_and_push_settlements_on_the_same_rows_never_deadlock():
    location = factories.make_location()
    channel = factories.make_channel(locations=[location], slug="lock-order")
    sku = factories.make_sku()
    factories.stock(sku, location, 1_000_000)
    listings = [
        factories.make_listing(channel=channel, sku=sku, external_id=f"item-{n}") for n in range(6)
    ]
    # Owed rows whose ids run against their listings' order.
    PendingPush.objects.filter(channel=channel).delete()
    for listing in reversed(listings):
        PendingPush.objects.create(listing=listing, channel=channel)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sell() -> None:
        try:
            start.wait()
            for _ in range(ROUNDS):
                services.reserve_stock(
                    sku_id=sku.pk,
                    location_id=location.pk,
                    quantity=1,
                    context=services.EventContext(idempotency_key=f"sale-{uuid.uuid4()}"),
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def settle() -> None:
        try:
            start.wait()
            for _ in range(ROUNDS):
                claims = push._claim(channel=channel, limit=10)
                push._give_back_tries([claims])
                push._hold(claims, seconds=0)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sell), threading.Thread(target=settle)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    deadlocks = [error for error in errors if isinstance(error, OperationalError)]
    assert not deadlocks, deadlocks[0]
    assert errors == []
    assert PendingPush.objects.filter(channel=channel).count() == len(listings)
