"""Events pulled from a platform's queue, and orders whose events name the order only."""

from __future__ import annotations

import pytest

from channels.models import Channel, WebhookReceipt
from channels.pipeline import ingest, receive
from inventory.models import EventKind, InventoryEvent
from tests import factories
from tests.channels.connectors.reference_platform import PLATFORM


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored: the assertions then see it not applied."""


@pytest.mark.django_db
def test_queued_events_are_stored_once_acknowledged_and_their_orders_fetched(
    reference_platform,
):
    """Three orders announced on the queue, one of them twice (queues deliver at least
    once): each is stored once, every message is acknowledged after it is stored, and
    ingest fetches each order's lines, which the event did not carry, to commit them."""
    location = factories.make_location()
    channel = factories.make_channel(
        locations=[location],
        platform=PLATFORM,
        mode=Channel.Mode.ACTIVE,
        api_base_url=reference_platform.url,
    )
    sku = factories.make_sku(code="A-1")
    factories.stock(sku, location, 10)
    factories.make_listing(channel=channel, sku=sku, external_id="A-1", external_sku="A-1")
    reference_platform.place_order("o-1", [{"sku": "A-1", "quantity": 2}], copies=2)
    reference_platform.place_order("o-2", [{"sku": "A-1", "quantity": 1}])
    reference_platform.place_order("o-3", [{"sku": "A-1", "quantity": 3}])

    assert receive.pull_notifications(channel_id=channel.pk) == 3

    assert not reference_platform.queue
    assert len(reference_platform.acknowledged) == 4
    assert WebhookReceipt.objects.filter(channel=channel).count() == 3
    ingest.process_new_receipts(retry=_leave_for_later)
    committed = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert sorted(event.delta_committed for event in committed) == [1, 2, 3]
    assert set(
        WebhookReceipt.objects.filter(channel=channel).values_list("status", flat=True)
    ) == {WebhookReceipt.Status.PROCESSED}


@pytest.mark.django_db
def test_an_order_the_platform_cannot_produce_yet_fails_its_receipt_for_a_retry(
    reference_platform,
):
    """The order lookup finds nothing (404): nothing is committed and the receipt is left
    failed, for the sweep to try again."""
    location = factories.make_location()
    channel = factories.make_channel(
        locations=[location], platform=PLATFORM, api_base_url=reference_platform.url
    )
    reference_platform.place_order("o-9", [{"sku": "A-1", "quantity": 2}])
    reference_platform.orders.clear()
    assert receive.pull_notifications(channel_id=channel.pk) == 1
    ingest.process_new_receipts(retry=_leave_for_later)
    receipt = WebhookReceipt.objects.get(channel=channel)
    assert receipt.status == WebhookReceipt.Status.FAILED
    assert "404" in receipt.error
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).exists()
