"""Orders whose webhook never came: the backup poll and reconciliation recover them.

The Shopify simulator drops the order's webhook on purpose (``deliver: false``); the
pipeline runs in this process, as its tasks would, over real HTTP to the simulator.
"""

from __future__ import annotations

import time

import pytest

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
