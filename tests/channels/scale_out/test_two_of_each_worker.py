"""Two ingest and two push workers on one database and one Redis: every order placed on
three shops (each delivered twice) is committed once, and every shop ends at the master's
figure, as with one worker of each."""

from __future__ import annotations

import concurrent.futures
import random

import pytest
from django.db.models import Count

from channels.models import DeadLetter, PendingPush, WebhookReceipt
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.connectors.drivers import OpenChannel, ShopifyDriver
from tests.channels.e2e.conftest import wait_until

pytestmark = pytest.mark.slow

STOCK = 40
SKUS = 4
SHOPS = 3
ORDERS = 60


def _shown(driver: ShopifyDriver, shops: list[OpenChannel]) -> dict[tuple[str, str], int | None]:
    return {
        (opened.tenant, listing.external_sku): driver.quantity_on_channel(opened, listing)
        for opened in shops
        for listing in opened.listings
    }


def test_two_workers_of_each_kind_lose_nothing_and_apply_nothing_twice(
    transactional_db, shopify_simulator, live_server, scaled_out_workers
):
    location = factories.make_location()
    skus = [factories.make_sku() for _ in range(SKUS)]
    for sku in skus:
        factories.stock(sku, location, STOCK)
    driver = ShopifyDriver(shopify_simulator)
    shops = [
        driver.open_channel(skus=skus, location=location, receiver_url=live_server.url)
        for _ in range(SHOPS)
    ]
    wait_until(
        lambda: set(_shown(driver, shops).values()) == {STOCK},
        timeout_s=60,
        describe=lambda: str(_shown(driver, shops)),
    )

    picks = random.Random(5)
    wanted = [(picks.choice(shops), picks.randrange(SKUS)) for _ in range(ORDERS)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda pick: driver.place_order(
                    pick[0], pick[0].listings[pick[1]], 1, duplicates=1
                ),
                wanted,
            )
        )

    sold = [sum(1 for _, index in wanted if index == n) for n in range(SKUS)]
    expected = {
        (opened.tenant, sku.code): STOCK - sold[n]
        for opened in shops
        for n, sku in enumerate(skus)
    }
    wait_until(
        lambda: (
            _shown(driver, shops) == expected
            and not PendingPush.objects.exists()
            and InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).count() == ORDERS
        ),
        timeout_s=90,
        describe=lambda: str(
            {
                "shown": _shown(driver, shops),
                "expected": expected,
                "committed": InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).count(),
                "receipts": list(WebhookReceipt.objects.values("status").annotate(n=Count("id"))),
            }
        ),
    )
    commits = InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED)
    assert commits.values("idempotency_key").distinct().count() == ORDERS
    assert WebhookReceipt.objects.filter(topic="orders/create").count() == ORDERS
    for n, sku in enumerate(skus):
        level = StockLevel.objects.get(sku=sku, location=location)
        assert level.committed == sold[n], sku.code
    assert not DeadLetter.objects.exists()
    worked = [
        name
        for name, log in scaled_out_workers.items()
        if name.startswith("push") and b"succeeded" in log.read_bytes()
    ]
    assert worked, "no push worker ran a task"
