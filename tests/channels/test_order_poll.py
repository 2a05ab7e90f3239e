"""Orders whose webhook never came: the backup poll and reconciliation recover them.

The Shopify simulator drops the order's webhook on purpose (``deliver: false``); the
pipeline runs in this process, as its tasks would, over real HTTP to the simulator.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from channels.models import OrderPoll, PendingPush, PushAttempt, WebhookReceipt
from channels.pipeline import ingest, push, receive
from inventory.models import EventKind, InventoryEvent
from reconciliation import services as reconciliation
from tests import factories
from tests.channels.connectors.drivers import OpenChannel, ShopifyDriver


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored: the assertions then see it not applied."""


def _drain(opened: OpenChannel) -> None:
    deadline = time.monotonic() + 15
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


@pytest.fixture
def two_channels(db, shopify_simulator):
    """Two shops selling one SKU (10 units) from one location, both shown 10."""
    driver = ShopifyDriver(shopify_simulator)
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    selling = driver.open_channel(skus=[sku], location=location)
    other = driver.open_channel(skus=[sku], location=location)
    _drain(selling)
    _drain(other)
    return driver, sku, selling, other


def _last_attempt_id() -> int:
    last = PushAttempt.objects.order_by("-pk").first()
    return last.pk if last is not None else 0


def _targets_since(opened: OpenChannel, attempt_id: int) -> list[int]:
    """The figures pushed to the channel's listing since then."""
    return list(
        PushAttempt.objects.filter(listing=opened.listings[0], pk__gt=attempt_id)
        .order_by("pk")
        .values_list("target_quantity", flat=True)
    )


def _drop_an_order(driver: ShopifyDriver, opened: OpenChannel, quantity: int) -> int:
    variant_id = int(str(opened.listings[0].extra_identifiers["variant_id"]))
    placed = driver.simulator.place_order(
        opened.tenant, [{"variant_id": variant_id, "quantity": quantity}], deliver=False
    )
    return int(placed["order_id"])


def test_the_next_order_poll_commits_an_order_whose_webhook_never_came(two_channels):
    """Committed once (a late webhook changes nothing), the selling channel is not pushed
    back up, and the other channel comes down by the order's units."""
    driver, sku, selling, other = two_channels
    before = _last_attempt_id()
    order_id = _drop_an_order(driver, selling, 3)
    assert driver.quantity_on_channel(selling, selling.listings[0]) == 7

    stored = receive.poll_orders(channel_id=selling.channel.pk)
    assert len(stored) == 1
    assert receive.poll_orders(channel_id=selling.channel.pk) == []  # polled again: stored once
    ingest.process_new_receipts(retry=_leave_for_later)
    _drain(selling)
    _drain(other)

    commits = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert [event.external_reference for event in commits] == [str(order_id)]
    assert driver.quantity_on_channel(selling, selling.listings[0]) == 7
    assert driver.quantity_on_channel(other, other.listings[0]) == 7
    assert _targets_since(selling, before) == [7]
    assert OrderPoll.objects.get(channel=selling.channel).last_error == ""

    (delivery,) = [
        d for d in driver.simulator.webhooks(selling.tenant) if d["topic"] == "orders/create"
    ]
    receipt_id = receive.record_receipt(
        channel_id=selling.channel.pk,
        topic="orders/create",
        dedupe_key=str(delivery["webhook_id"]),
        headers={},
        body=bytes(WebhookReceipt.objects.get(pk=stored[0]).body),
    )
    assert receipt_id is not None
    ingest.process_receipt(receipt_id=receipt_id)
    assert InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED).count() == 1


def test_reconciliation_reads_the_missed_order_before_it_corrects_anything(two_channels):
    """The channel shows 3 fewer than the master: reconciliation reads its orders first,
    ingests the missed one, and pushes nothing above what the channel shows."""
    driver, sku, selling, other = two_channels
    before = _last_attempt_id()
    _drop_an_order(driver, selling, 3)

    run = reconciliation.reconcile_channel(channel_id=selling.channel.pk)

    assert run is not None and run.status == "done", run and run.error
    assert InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED).count() == 1
    _drain(selling)
    _drain(other)
    assert driver.quantity_on_channel(selling, selling.listings[0]) == 7
    assert driver.quantity_on_channel(other, other.listings[0]) == 7
    assert _targets_since(selling, before) == [7]


def test_an_order_that_came_by_webhook_is_not_stored_again_by_the_poll(two_channels):
    """On a busy channel nearly every polled order came by webhook: none is stored twice."""
    driver, _, selling, _ = two_channels
    variant_id = int(str(selling.listings[0].extra_identifiers["variant_id"]))
    placed = driver.simulator.place_order(
        selling.tenant, [{"variant_id": variant_id, "quantity": 2}], deliver=False
    )
    (delivery,) = driver.simulator.webhooks(selling.tenant)
    receipt_id = receive.record_receipt(
        channel_id=selling.channel.pk,
        topic="orders/create",
        dedupe_key=str(delivery["webhook_id"]),
        headers={},
        body=json.dumps(delivery["payload"]).encode(),
    )
    assert receipt_id is not None
    ingest.process_receipt(receipt_id=receipt_id)
    assert InventoryEvent.objects.filter(external_reference=str(placed["order_id"])).exists()

    assert receive.poll_orders(channel_id=selling.channel.pk) == []


def test_the_simulated_orders_list_pages_with_link_headers(two_channels):
    """More orders than a page holds: each page's Link header leads to the next, and every
    order is listed once, oldest change first."""
    driver, _, selling, _ = two_channels
    variant_id = int(str(selling.listings[0].extra_identifiers["variant_id"]))
    placed = [
        driver.simulator.place_order(
            selling.tenant, [{"variant_id": variant_id, "quantity": 1}], deliver=False
        )["order_id"]
        for _ in range(3)
    ]
    url = f"{driver.simulator.shop_url(selling.tenant)}/admin/api/2026-01/orders.json"
    headers = {"X-Shopify-Access-Token": f"shpat_{selling.tenant}"}
    listed: list[int] = []
    response = requests.get(
        url, params={"limit": "2", "status": "any"}, headers=headers, timeout=5
    )
    while True:
        assert response.status_code == 200
        listed += [order["id"] for order in response.json()["orders"]]
        if "next" not in response.links:
            break
        response = requests.get(response.links["next"]["url"], headers=headers, timeout=5)
    assert listed == placed
