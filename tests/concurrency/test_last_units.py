"""The last units of a SKU, fought over by many channels at once, on real connections.

Each worker thread has its own database connection, so the row lock in the services is
what stands between the channels and an oversell. The control run replaces the services
with a read-then-write that takes no lock, to show the test can fail.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.db.models import F, Sum

from inventory import services
from inventory.models import InventoryEvent, StockLevel
from tests import factories

STOCK = 100
ATTEMPTS = 300
WORKERS = 24
CHANNELS = ["shopify-main", "shopify-outlet", "amazon", "walmart", "tiktok", "ebay"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _locked_attempt(sku_id: int, location_id: int, channel: str, attempt: int) -> str:
    """Half the attempts are checkouts holding a reservation, half are committed orders."""
    context = services.EventContext(
        idempotency_key=f"{channel}:{attempt}:{uuid.uuid4()}",
        source="channel",
        actor=channel,
        external_reference=f"{channel}-order-{attempt}",
    )
    try:
        if attempt % 2:
            services.reserve_stock(
                sku_id=sku_id, location_id=location_id, quantity=1, context=context
            )
        else:
            services.commit_order(
                sku_id=sku_id, location_id=location_id, quantity=1, context=context
            )
    except services.InsufficientStock:
        return "refused"
    return "sold"


def _unlocked_attempt(sku_id: int, location_id: int, channel: str, attempt: int) -> str:
    """The bug this product exists to prevent: check availability, then write, no lock."""
    level = StockLevel.objects.get(sku_id=sku_id, location_id=location_id)
    if level.available < 1:
        return "refused"
    time.sleep(0.002)  # the work a real handler does between its read and its write
    StockLevel.objects.filter(pk=level.pk).update(committed=F("committed") + 1)
    return "sold"


def _run_concurrently(
    attempt: Callable[[int, int, str, int], str], sku_id: int, location_id: int
) -> Counter[str]:
    start = threading.Barrier(WORKERS)

    def worker(worker_number: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        try:
            connection.ensure_connection()
            start.wait()
            for attempt_number in range(worker_number, ATTEMPTS, WORKERS):
                channel = random.choice(CHANNELS)
                outcomes[attempt(sku_id, location_id, channel, attempt_number)] += 1
        finally:
            connections.close_all()
        return outcomes

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(worker, range(WORKERS)))
    return sum(results, Counter())


def test_three_hundred_attempts_on_one_hundred_units_sell_exactly_one_hundred():
    """300 concurrent reserve/commit attempts on 100 units: 100 succeed, 200 refused."""
    sku = factories.make_sku()
    location = factories.make_location()
    factories.stock(sku, location, STOCK)

    outcomes = _run_concurrently(_locked_attempt, sku.pk, location.pk)

    assert outcomes == Counter({"sold": STOCK, "refused": ATTEMPTS - STOCK})
    level = StockLevel.objects.get(sku=sku, location=location)
    assert level.available == 0
    assert level.committed + level.reserved == STOCK
    ledger = InventoryEvent.objects.filter(sku=sku, location=location).aggregate(
        on_hand=Sum("delta_on_hand"),
        committed=Sum("delta_committed"),
        reserved=Sum("delta_reserved"),
    )
    assert ledger == {
        "on_hand": level.on_hand,
        "committed": level.committed,
        "reserved": level.reserved,
    }
    assert not InventoryEvent.objects.filter(sku=sku, shortfall__gt=0).exists()


def test_control_read_then_write_without_locks_oversells():
    """The same fight without the services' lock sells more than there is."""
    sku = factories.make_sku()
    location = factories.make_location()
    factories.stock(sku, location, STOCK)

    outcomes = _run_concurrently(_unlocked_attempt, sku.pk, location.pk)

    level = StockLevel.objects.get(sku=sku, location=location)
    assert outcomes["sold"] > STOCK
    assert level.available < 0
