"""A burst of Amazon order notifications through the consumer process, killed once.

450 orders on the Amazon simulator announce themselves by 500 ORDER_CHANGE messages on a
moto SQS queue (one in ten sent twice, the first fifty held and delivered newest first).
``manage.py consume_notifications`` runs as a real process on the test database; once it
has stored some, it is killed with SIGKILL (what it had received and not deleted comes back
after the queue's visibility timeout) and a second one is started. Every order must be
committed exactly once, the queue must end empty, and a Shopify shop selling the same stock
must show the master's figure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Count

from channels.models import WebhookReceipt
from channels.pipeline import ingest, push
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.connectors.drivers import AmazonDriver, ShopifyDriver
from tests.channels.e2e.conftest import REPO_ROOT, _process_env, wait_until

pytestmark = pytest.mark.slow

ORDERS = 450
# Every ninth order is sent twice: 50 duplicates, 500 messages.
DUPLICATE_EVERY = 9
HELD_FIRST = 50
STOCK = 1000
# Short, so what the killed consumer received comes back within the test.
VISIBILITY_TIMEOUT_S = 2


class _Consumers:
    def __init__(self) -> None:
        self.env = {**_process_env(), "LOG_LEVEL": "INFO"}
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log_path = REPO_ROOT / ".data" / f"e2e-consumer-{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "consume_notifications", "--idle-sleep-s=0.2"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture
def consumers(transactional_db: Any) -> Iterator[_Consumers]:
    started = _Consumers()
    try:
        yield started
    finally:
        started.stop()


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored (none is expected)."""


def test_a_consumer_killed_mid_burst_commits_every_order_once_and_empties_the_queue(
    consumers, amazon_simulator, sqs_server, shopify_simulator
):
    """500 messages, duplicates and disorder, one SIGKILL: each order once, queue empty,
    Shopify at the master's figure."""
    amazon = AmazonDriver(amazon_simulator, sqs_server)
    shopify = ShopifyDriver(shopify_simulator)
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, STOCK)
    on_amazon = amazon.open_channel(skus=[sku], location=location)
    on_shopify = shopify.open_channel(skus=[sku], location=location)
    queue_url = amazon.queues[on_amazon.tenant]
    sqs_server.client.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_S)}
    )
    amazon_simulator.emitter(on_amazon.tenant, hold_next=HELD_FIRST, jitter_s=0.02)
    seller_sku = on_amazon.listings[0].external_id

    first = consumers.start("killed")
    orders = [
        str(
            amazon_simulator.place_order(
                on_amazon.tenant,
                [{"sku": seller_sku, "quantity": 1}],
                duplicates=1 if number % DUPLICATE_EVERY == 0 else 0,
            )["order_id"]
        )
        for number in range(ORDERS)
    ]
    receipts = WebhookReceipt.objects.filter(channel=on_amazon.channel)
    wait_until(lambda: receipts.count() >= ORDERS // 3, timeout_s=60)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert receipts.count() < ORDERS, "the kill came after the burst"

    consumers.start("second")
    wait_until(
        lambda: receipts.count() == ORDERS and sqs_server.waiting(queue_url) == 0,
        timeout_s=90,
        describe=lambda: f"{receipts.count()} stored, {sqs_server.waiting(queue_url)} queued",
    )
    ingest.process_new_receipts(retry=_leave_for_later)

    committed = (
        InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
        .values("external_reference")
        .annotate(times=Count("id"))
    )
    assert {row["external_reference"]: row["times"] for row in committed} == dict.fromkeys(
        orders, 1
    )
    assert not receipts.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.on_hand, level.committed) == (STOCK, ORDERS)
    push.push_owed(channel_id=on_shopify.channel.pk)
    assert shopify.quantity_on_channel(on_shopify, on_shopify.listings[0]) == STOCK - ORDERS
