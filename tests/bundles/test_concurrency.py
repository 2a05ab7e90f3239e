"""Two bundles sharing a component, sold at the same instant from many real connections.

Every worker thread has its own database connection. Each sale locks all of its
component rows in one statement, in primary-key order: no component may be oversold,
no pair of sales may deadlock, and the ledger must add up to the levels afterwards.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.db.models import Sum

from bundles import selectors, services
from inventory import services as inventory_services
from inventory.models import InventoryEvent, StockLevel
from tests import factories
from tests.bundles.helpers import make_bundle

ATTEMPTS = 400
WORKERS = 24

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_bundles_sharing_a_component_never_oversell_it_nor_deadlock():
    """400 concurrent sales of two bundles, a bundle nesting one of them, and the shared
    SKU itself: every refusal is InsufficientStock, nothing is oversold, the ledger holds."""
    first, shared, last = factories.make_sku(), factories.make_sku(), factories.make_sku()
    location = factories.make_location()
    # Stock rows created in this order: a sale of ``left`` locks first then shared, one of
    # ``right`` shared then last; locked in any other order, the two would deadlock.
    factories.stock(first, location, 150)
    factories.stock(shared, location, 100)
    factories.stock(last, location, 150)
    left = make_bundle((first, 1), (shared, 1))
    right = make_bundle((shared, 2), (last, 1))
    nested = make_bundle((left, 1), (right, 1))
    sellable = [left.pk, right.pk, nested.pk, shared.pk]
    start = threading.Barrier(WORKERS)

    def worker(worker_number: int) -> Counter[tuple[int, str]]:
        outcomes: Counter[tuple[int, str]] = Counter()
        chooser = random.Random(worker_number)
        try:
            connection.ensure_connection()
            start.wait()
            for _ in range(worker_number, ATTEMPTS, WORKERS):
                sku_id = chooser.choice(sellable)
                try:
                    services.commit_sku(
                        sku_id=sku_id,
                        location_id=location.pk,
                        quantity=chooser.randint(1, 2),
                        context=inventory_services.EventContext(
                            idempotency_key=f"race:{uuid.uuid4()}", source="channel"
                        ),
                    )
                except inventory_services.InsufficientStock:
                    outcomes[sku_id, "refused"] += 1
                else:
                    outcomes[sku_id, "sold"] += 1
        finally:
            connections.close_all()
        return outcomes

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = sum(pool.map(worker, range(WORKERS)), Counter())

    assert sum(outcomes.values()) == ATTEMPTS
    assert sum(count for (_, outcome), count in outcomes.items() if outcome == "refused") > 0
    levels = StockLevel.objects.filter(sku__in=[first, shared, last], location=location)
    for level in levels:
        assert level.available >= 0, level
        ledger = InventoryEvent.objects.filter(sku_id=level.sku_id, location=location).aggregate(
            on_hand=Sum("delta_on_hand"),
            committed=Sum("delta_committed"),
            reserved=Sum("delta_reserved"),
        )
        assert ledger == {
            "on_hand": level.on_hand,
            "committed": level.committed,
            "reserved": level.reserved,
        }
    assert not InventoryEvent.objects.filter(shortfall__gt=0).exists()
    # The shared SKU ran out: the contended row really was fought over.
    assert StockLevel.objects.get(sku=shared, location=location).available < 2
    for bundle in (right, nested):
        assert selectors.bundle_available(bundle_id=bundle.pk, location_ids=[location.pk]) == 0
    assert not StockLevel.objects.filter(sku__in=[left, right, nested]).exists()
