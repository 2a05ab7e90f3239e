"""End to end over real HTTP: simulator -> signed webhook -> nventory -> pushes -> simulator.

Three processes besides this one: the Shopify simulator, gunicorn serving nventory and a
Celery worker, all on the test database. Nothing is called in process: orders are placed
on the simulator, which delivers them as webhooks, and the test only watches.
"""

from __future__ import annotations

import concurrent.futures
import time
from decimal import Decimal

import pytest
from django.db.models import Sum

from channels.models import (
    Channel,
    ChannelBreaker,
    DeadLetter,
    DriftRecord,
    ListingSyncState,
    OversellIncident,
    PendingPush,
    WebhookReceipt,
)
from channels.pipeline import outbox
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.e2e.conftest import wait_until, wire_simulated_shop

pytestmark = pytest.mark.slow

ITEM_ID = 5001
VARIANT_ID = 6001


@pytest.fixture
def wire_shop(transactional_db, shopify_simulator, nventory_web, nventory_worker):
    """A shop on the simulator and its channel in nventory, webhooks pointed at gunicorn."""

    def wire(**fields) -> Channel:
        return wire_simulated_shop(
            shopify_simulator,
            web_url=nventory_web,
            item_id=ITEM_ID,
            variant_id=VARIANT_ID,
            **fields,
        )

    return wire


def shown(simulator, channel: Channel) -> int:
    return int(simulator.available(channel.slug, ITEM_ID))


def wait_for_shops(simulator, expected: dict[Channel, int], timeout_s: float = 30) -> None:
    wait_until(
        lambda: all(shown(simulator, channel) == qty for channel, qty in expected.items()),
        timeout_s=timeout_s,
        describe=lambda: str(
            {
                "shown": {c.slug: shown(simulator, c) for c in expected},
                "expected": {c.slug: q for c, q in expected.items()},
                "pending": list(PendingPush.objects.values("listing_id", "attempts", "errors")),
                "receipts": list(WebhookReceipt.objects.values("status", "error")),
            }
        ),
    )


def test_a_sale_on_one_store_reaches_every_store_with_buffers_applied(
    wire_shop, shopify_simulator
):
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 50)
    store_a = wire_shop(location=location, sku=sku)
    store_b = wire_shop(location=location, sku=sku)
    factories.make_buffer_rule(channel=store_b, percent=Decimal(10))
    outbox.mark_channel_owed(channel=store_a)
    wait_for_shops(shopify_simulator, {store_a: 50, store_b: 45})

    # Delivered ten times (Shopify retries and duplicates): committed once.
    order = shopify_simulator.place_order(
        store_a.slug, [{"variant_id": VARIANT_ID, "quantity": 3}], duplicates=9
    )
    assert order["delivery_status"] == 200
    wait_for_shops(shopify_simulator, {store_a: 47, store_b: 42})  # floor(47 x 0.9)
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.on_hand, level.committed) == (50, 3)
    assert WebhookReceipt.objects.filter(channel=store_a).count() == 1

    shopify_simulator.cancel_order(store_a.slug, order["order_id"])
    wait_for_shops(shopify_simulator, {store_a: 50, store_b: 45})
    level.refresh_from_db()
    assert level.committed == 0

    # An operator edits the quantity on the store itself: drift, corrected to the master's.
    shopify_simulator.set_quantity(store_b.slug, ITEM_ID, 80, notify=True)
    wait_until(lambda: DriftRecord.objects.filter(channel=store_b).exists())
    wait_for_shops(shopify_simulator, {store_a: 50, store_b: 45})


def test_stores_reporting_every_level_change_converge_without_false_drift(
    wire_shop, shopify_simulator
):
    """Subscribed to inventory levels, a shop reports our own writes and its sales as levels
    too, each on its own delivery: before or after the order, before or after our write is
    acknowledged."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 40)
    selling, other = (
        wire_shop(location=location, sku=sku, shop_settings={"level_webhooks": True})
        for _ in range(2)
    )
    outbox.mark_channel_owed(channel=selling)
    outbox.mark_channel_owed(channel=other)
    wait_for_shops(shopify_simulator, {selling: 40, other: 40})

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        placed = list(
            pool.map(
                lambda _: shopify_simulator.place_order(
                    selling.slug, [{"variant_id": VARIANT_ID, "quantity": 1}]
                ),
                range(12),
            )
        )
    assert all(order["delivery_status"] == 200 for order in placed)
    wait_for_shops(shopify_simulator, {selling: 28, other: 28})

    def every_delivery_applied() -> bool:
        sent = sum(len(shopify_simulator.webhooks(c.slug)) for c in (selling, other))
        receipts = WebhookReceipt.objects.filter(channel__in=[selling, other])
        return (
            receipts.count() == sent
            and not receipts.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
        )

    wait_until(every_delivery_applied, timeout_s=30)
    assert WebhookReceipt.objects.filter(topic="inventory_levels/update").count() > 12
    assert StockLevel.objects.get(sku=sku, location=location).committed == 12
    # The other shop only ever showed what we wrote: none of its levels was drift.
    assert not DriftRecord.objects.filter(channel=other).exists()
    # At most one per sale whose level came before its order, explained by that order (the
    # labels are best effort: a level and a compare-and-set meeting the same sale within
    # milliseconds may leave one record short); and every sale counted once (below).
    drifts = DriftRecord.objects.filter(channel=selling)
    assert drifts.count() <= 12
    assert sum(not drift.explained for drift in drifts) <= 1, [
        (drift.expected_quantity, drift.channel_quantity, drift.explained_by) for drift in drifts
    ]
    for channel in (selling, other):
        state = ListingSyncState.objects.get(listing__channel=channel)
        assert (state.expected_channel_quantity, state.unexplained_channel_moves) == (28, 0)
    wait_for_shops(shopify_simulator, {selling: 28, other: 28})
    assert not PendingPush.objects.filter(listing__channel__in=[selling, other]).exists()


def test_black_friday_105_concurrent_orders_for_100_units_on_two_stores(
    wire_shop, shopify_simulator
):
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 100)
    stores = [wire_shop(location=location, sku=sku, units_shown=100) for _ in range(2)]
    outbox.mark_channel_owed(channel=stores[0])
    outbox.mark_channel_owed(channel=stores[1])
    wait_for_shops(shopify_simulator, dict.fromkeys(stores, 100))

    def buy(number: int) -> int:
        store = stores[number % 2]
        answer = shopify_simulator.place_order(
            store.slug, [{"variant_id": VARIANT_ID, "quantity": 1}]
        )
        return int(answer["order_id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=105) as pool:
        order_ids = list(pool.map(buy, range(105)))
    assert len(set(order_ids)) == 105

    wait_until(
        lambda: WebhookReceipt.objects.filter(status="processed").count() == 105,
        timeout_s=60,
        describe=lambda: str(list(WebhookReceipt.objects.values_list("status", flat=True))),
    )
    wait_for_shops(shopify_simulator, dict.fromkeys(stores, 0), timeout_s=60)

    commits = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert commits.count() == 105
    assert commits.filter(shortfall=0).count() == 100
    incidents = OversellIncident.objects.filter(sku=sku)
    assert incidents.count() == 5
    assert incidents.aggregate(total=Sum("shortfall"))["total"] == 5
    assert {incident.order_reference for incident in incidents} <= {str(i) for i in order_ids}
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.on_hand, level.committed, level.reserved) == (100, 105, 0)
    ledger = InventoryEvent.objects.filter(sku=sku).aggregate(
        on_hand=Sum("delta_on_hand"), committed=Sum("delta_committed")
    )
    assert (ledger["on_hand"], ledger["committed"]) == (100, 105)


def test_a_store_that_is_down_trips_its_breaker_and_catches_up_when_it_is_back(
    wire_shop, shopify_simulator
):
    """The worker leaves a failing store alone, probes it after the cooldown, and pushes
    what it was owed (the dead letters of the outage included) with nobody stepping in."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 30)
    down, up = (wire_shop(location=location, sku=sku) for _ in range(2))
    down.platform_settings |= {"breaker_failures": 4, "breaker_cooldown_s": 1}
    down.save()
    outbox.mark_channel_owed(channel=down)
    outbox.mark_channel_owed(channel=up)
    wait_for_shops(shopify_simulator, {down: 30, up: 30})

    shopify_simulator.faults(down.slug, fail_next=10_000, fail_status=503)
    for _ in range(3):
        shopify_simulator.place_order(up.slug, [{"variant_id": VARIANT_ID, "quantity": 1}])
        time.sleep(0.3)  # each sale its own push: failed calls in a row for the down store
    wait_for_shops(shopify_simulator, {up: 27})
    wait_until(
        lambda: ChannelBreaker.objects.filter(channel=down, trips__gte=1).exists(),
        describe=lambda: str(list(ChannelBreaker.objects.values())),
    )
    assert shown(shopify_simulator, down) == 30

    shopify_simulator.faults(down.slug, reset=True)
    wait_for_shops(shopify_simulator, {down: 27, up: 27}, timeout_s=30)
    wait_until(
        lambda: ChannelBreaker.objects.filter(channel=down, failures=0, trips=0).exists(),
        describe=lambda: str(list(ChannelBreaker.objects.values())),
    )
    assert not DeadLetter.objects.filter(channel=down, status=DeadLetter.Status.OPEN).exists()
