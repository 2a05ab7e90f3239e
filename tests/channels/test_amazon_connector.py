"""Amazon through the pipeline, against its simulator and a moto SQS queue over HTTP: what the
contract suite cannot express (feeds and their reports, patches that never apply, tokens,
QuotaExceeded, notifications in disorder, the backup order poll)."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from channels.connectors.amazon.client import forget_tokens
from channels.connectors.base import ChannelThrottled
from channels.connectors.registry import get_connector
from channels.connectors.types import ItemStatus, QuantityUpdate
from channels.models import (
    DeadLetter,
    PendingPush,
    PushAttempt,
    SubmittedWrite,
    WebhookReceipt,
)
from channels.pipeline import ingest, push, receive
from inventory.models import EventKind, InventoryEvent
from reconciliation import services as reconciliation
from reconciliation.models import Discrepancy
from tests import factories
from tests.channels.connectors.drivers import AmazonDriver, OpenChannel


@pytest.fixture
def driver(amazon_simulator, sqs_server) -> AmazonDriver:
    return AmazonDriver(amazon_simulator, sqs_server)


def _open(driver: AmazonDriver, stock: tuple[int, ...], **settings) -> OpenChannel:
    location = factories.make_location()
    skus = [factories.make_sku() for _ in stock]
    for sku, on_hand in zip(skus, stock, strict=True):
        factories.stock(sku, location, on_hand)
    opened = driver.open_channel(skus=skus, location=location)
    if settings:
        opened.channel.platform_settings = {**opened.channel.platform_settings, **settings}
        opened.channel.save(update_fields=["platform_settings"])
    return opened


def _drain(opened: OpenChannel) -> None:
    deadline = time.monotonic() + 15
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored."""


@pytest.mark.django_db
def test_a_feed_is_invisible_until_processed_then_its_report_settles_each_item(driver):
    """Above the feed threshold one JSON_LISTINGS_FEED carries the batch: nothing shows on
    Amazon while it is queued, reconciliation sees no drift meanwhile, and its processing
    report settles each item: applied, or a dead letter with Amazon's message."""
    opened = _open(driver, (10, 20, 30), feed_threshold=2)
    sku = factories.make_sku()
    factories.stock(sku, opened.location, 4)
    missing = driver.add_listing_the_platform_lacks(opened, sku)
    _drain(opened)

    assert SubmittedWrite.objects.filter(channel=opened.channel).count() == 4
    assert all(
        write.submission_id.startswith("feed:")
        for write in SubmittedWrite.objects.filter(channel=opened.channel)
    )
    listings = driver.simulator.listings(opened.tenant)
    assert [listings[listing.external_id]["quantity"] for listing in opened.listings] == [0] * 3
    run = reconciliation.reconcile_channel(channel_id=opened.channel.pk)
    assert run is not None and run.status == "done", run and run.error
    assert not Discrepancy.objects.filter(run=run).exists()
    assert push.settle_submissions(channel_id=opened.channel.pk) == 0

    driver.settle_submissions_on_the_platform(opened)
    assert push.settle_submissions(channel_id=opened.channel.pk) == 4

    assert PushAttempt.objects.filter(channel=opened.channel, outcome="applied").count() == 3
    dead = DeadLetter.objects.get(listing=missing)
    assert "does not match any listing" in dead.attempts[0]["error"]
    assert [driver.quantity_on_channel(opened, listing) for listing in opened.listings] == [
        10,
        20,
        30,
    ]


@pytest.mark.django_db
def test_an_accepted_patch_that_never_applies_is_caught(driver):
    """ACCEPTED and dropped: with an issue on the listing it is refused (a dead letter with
    Amazon's message); silently, it is owed again once the deadline passes."""
    opened = _open(driver, (5, 6))
    driver.simulator.faults(opened.tenant, endpoint="patchListingsItem", drop_next=2)
    _drain(opened)
    driver.settle_submissions_on_the_platform(opened)
    assert push.settle_submissions(channel_id=opened.channel.pk) == 2
    assert DeadLetter.objects.filter(channel=opened.channel).count() == 2
    dead = DeadLetter.objects.filter(channel=opened.channel).first()
    assert dead is not None and "could not be applied" in dead.attempts[0]["error"]

    silent = _open(driver, (7,), patch_deadline_s=0.001)
    driver.simulator.update_seller(silent.tenant, issue_on_drop=False)
    driver.simulator.faults(silent.tenant, endpoint="patchListingsItem", drop_next=1)
    _drain(silent)
    driver.settle_submissions_on_the_platform(silent)
    assert push.settle_submissions(channel_id=silent.channel.pk) == 1
    assert PendingPush.objects.filter(channel=silent.channel).exists()
    _drain(silent)
    driver.settle_submissions_on_the_platform(silent)
    push.settle_submissions(channel_id=silent.channel.pk)
    assert driver.quantity_on_channel(silent, silent.listings[0]) == 7


@pytest.mark.django_db
def test_the_access_token_is_cached_and_renewed_once_when_refused(driver):
    """One LWA call serves many SP-API calls; an expired token (403 Unauthorized) is renewed
    once and the call goes through."""
    forget_tokens()
    opened = _open(driver, (1, 2, 3))
    _drain(opened)
    operations = [r.get("operation") for r in driver.simulator.requests(opened.tenant)]
    assert operations.count("getAccessToken") == 1
    assert operations.count("patchListingsItem") == 3
    assert all(
        r["headers"].get("x-amz-access-token", "").startswith("Atza|")
        for r in driver.simulator.requests(opened.tenant)
        if r.get("operation") == "patchListingsItem"
    )
    driver.simulator.faults(opened.tenant, endpoint="getListingsItem", expired_token_next=1)
    connector = get_connector(opened.channel)
    listing = opened.listings[0]
    driver.settle_submissions_on_the_platform(opened)
    assert connector.read_quantities([push._listing_ref(listing)]) == {listing.pk: 1}
    operations = [r.get("operation") for r in driver.simulator.requests(opened.tenant)]
    assert operations.count("getAccessToken") == 2


@pytest.mark.django_db
def test_quota_exceeded_backs_off_exponentially(driver):
    """429 QuotaExceeded has no Retry-After: each throttle in a row waits twice as long."""
    opened = _open(driver, (1,))
    connector = get_connector(opened.channel)
    update = QuantityUpdate(opened.listings[0].pk, opened.listings[0].external_id, 1, None, "k")
    waits = []
    for _ in range(3):
        driver.simulator.faults(opened.tenant, endpoint="patchListingsItem", throttle_next=1)
        with pytest.raises(ChannelThrottled) as throttled:
            connector.push_quantities([update])
        waits.append(throttled.value.retry_after_s)
    assert waits == [0.01, 0.02, 0.04]
    assert connector.push_quantities([update])[0].status == ItemStatus.PENDING


@pytest.mark.django_db
def test_order_notifications_in_disorder_commit_each_order_once_and_empty_the_queue(driver):
    """Orders announced with duplicates and out of order: each is committed once, every
    message is deleted once stored, and a cancellation releases its units."""
    opened = _open(driver, (50,))
    listing = opened.listings[0]
    queue_url = driver.queues[opened.tenant]
    driver.simulator.emitter(opened.tenant, duplicate_rate=0.3, hold_next=5)
    orders = [
        driver.simulator.place_order(opened.tenant, [{"sku": listing.external_id, "quantity": 1}])
        for _ in range(5)
    ]
    deadline = time.monotonic() + 10
    while driver.sqs.waiting(queue_url) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # the duplicates follow their originals
    receive.pull_notifications(channel_id=opened.channel.pk)
    ingest.process_new_receipts(retry=_leave_for_later)
    assert driver.sqs.waiting(queue_url) == 0
    committed = InventoryEvent.objects.filter(sku=listing.sku, kind=EventKind.ORDER_COMMITTED)
    assert sorted(e.external_reference for e in committed) == sorted(o["order_id"] for o in orders)
    assert WebhookReceipt.objects.filter(channel=opened.channel).count() == 5

    before = driver.sqs.waiting(queue_url)
    driver.simulator.cancel_order(opened.tenant, orders[0]["order_id"], buyer_requested=True)
    while driver.sqs.waiting(queue_url) <= before:
        time.sleep(0.05)
    receive.pull_notifications(channel_id=opened.channel.pk)
    ingest.process_new_receipts(retry=_leave_for_later)
    released = InventoryEvent.objects.filter(sku=listing.sku, kind=EventKind.ORDER_CANCELLED)
    assert [e.external_reference for e in released] == [orders[0]["order_id"]]


@pytest.mark.django_db
def test_an_order_whose_notification_never_came_is_committed_by_the_backup_poll(driver):
    """getOrders + getOrderItems find the dropped order; the one that came by notification
    is not stored again."""
    opened = _open(driver, (20,))
    listing = opened.listings[0]
    heard = driver.place_order(opened, listing, 2)
    driver.bring_events_in(opened)
    ingest.process_new_receipts(retry=_leave_for_later)
    lost = driver.simulator.place_order(
        opened.tenant, [{"sku": listing.external_id, "quantity": 3}], deliver=False
    )["order_id"]

    stored = receive.poll_orders(channel_id=opened.channel.pk)
    assert len(stored) == 1
    ingest.process_new_receipts(retry=_leave_for_later)
    committed = InventoryEvent.objects.filter(sku=listing.sku, kind=EventKind.ORDER_COMMITTED)
    assert sorted((e.external_reference, e.delta_committed) for e in committed) == sorted(
        [(heard, 2), (lost, 3)]
    )
    assert receive.poll_orders(channel_id=opened.channel.pk) == []


@pytest.mark.django_db
def test_the_consumer_command_stores_queued_orders_and_deletes_them(driver):
    """``manage.py consume_notifications`` long-polls every queue channel: the order is
    stored once and gone from the queue."""
    opened = _open(driver, (9,))
    order_id = driver.place_order(opened, opened.listings[0], 2, duplicates=1)
    call_command("consume_notifications", once=True)
    [receipt] = WebhookReceipt.objects.filter(channel=opened.channel)
    assert receipt.topic == "ORDER_CHANGE"
    assert order_id.encode() in bytes(receipt.body)
    assert driver.sqs.waiting(driver.queues[opened.tenant]) == 0
