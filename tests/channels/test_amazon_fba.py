"""Amazon FBA as a location: Amazon's counts read into the master (notifications and the
scheduled summaries read), never pushed back; and FEED_PROCESSING_FINISHED waking the
settlement. Against the Amazon and Shopify simulators and a moto SQS queue, over HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from channels import services as channel_services
from channels.models import Listing, MarketplaceLocation, PendingPush, PushAttempt
from channels.pipeline import enqueue, ingest, marketplace_stock, push, receive
from inventory.models import EventKind, EventSource, InventoryEvent, MarketplaceStock, StockLevel
from tests import factories
from tests.channels.connectors.drivers import (
    AmazonDriver,
    OpenChannel,
    ShopifyDriver,
)

MARKETPLACE = "ATVPDKIKX0DER"


@dataclass(frozen=True)
class _Shops:
    amazon: OpenChannel
    shopify: OpenChannel
    fba: MarketplaceLocation
    fba_listing: Listing


@pytest.fixture
def amazon(amazon_simulator, sqs_server) -> AmazonDriver:
    return AmazonDriver(amazon_simulator, sqs_server)


@pytest.fixture
def shopify(shopify_simulator) -> ShopifyDriver:
    return ShopifyDriver(shopify_simulator)


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored."""


def _drain(opened: OpenChannel) -> None:
    deadline = time.monotonic() + 15
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


def _open(amazon: AmazonDriver, shopify: ShopifyDriver, *, warehouse_units: int) -> _Shops:
    """One SKU: MFN stock in a warehouse, FBA stock at Amazon; Amazon lists it as FBA, Shopify
    sells from both locations."""
    sku = factories.make_sku()
    warehouse = factories.make_location()
    if warehouse_units:
        factories.stock(sku, warehouse, warehouse_units)
    on_amazon = amazon.open_channel(skus=[sku], location=warehouse)
    fba_listing = on_amazon.listings[0]
    channel_services.update_listing(
        listing_id=fba_listing.pk,
        fields=channel_services.ListingFields(
            **{
                **vars(channel_services.ListingFields.of(fba_listing)),
                "fulfilled_by_channel": True,
            }
        ),
    )
    fba = marketplace_stock.open_marketplace_location(
        channel=on_amazon.channel, marketplace_id=MARKETPLACE
    )
    on_shopify = shopify.open_channel(skus=[sku], location=warehouse)
    channel_services.set_channel_locations(
        channel_id=on_shopify.channel.pk, location_ids=[warehouse.pk, fba.location_id]
    )
    _drain(on_amazon)
    _drain(on_shopify)
    return _Shops(amazon=on_amazon, shopify=on_shopify, fba=fba, fba_listing=fba_listing)


def _notify(amazon: AmazonDriver, shops: _Shops, **quantities: int) -> None:
    """Amazon moves FBA stock; its one notification is stored and ingested."""
    queue_url = amazon.queues[shops.amazon.tenant]
    before = amazon.sqs.waiting(queue_url)
    amazon.simulator.set_fba(shops.amazon.tenant, shops.fba_listing.external_id, **quantities)
    deadline = time.monotonic() + 10
    while amazon.sqs.waiting(queue_url) <= before:
        assert time.monotonic() < deadline, "FBA_INVENTORY_AVAILABILITY_CHANGES never queued"
        time.sleep(0.02)
    receive.pull_notifications(channel_id=shops.amazon.channel.pk)
    ingest.process_new_receipts(retry=_leave_for_later)


def _fba_level(shops: _Shops) -> StockLevel:
    return StockLevel.objects.get(sku=shops.fba_listing.sku, location=shops.fba.location)


@pytest.mark.django_db
def test_fulfillable_stock_reaches_the_fba_location_and_every_channel_selling_from_it(
    amazon, shopify
):
    """One notification: the FBA location's on hand becomes Amazon's fulfillable count, on
    the ledger as a marketplace count; Shopify lists warehouse plus FBA; nothing is ever
    written to Amazon for its FBA listing."""
    shops = _open(amazon, shopify, warehouse_units=10)

    _notify(amazon, shops, fulfillable=7, inbound_shipped=5)

    assert _fba_level(shops).on_hand == 7
    [event] = InventoryEvent.objects.filter(location=shops.fba.location)
    assert (event.kind, event.source, event.delta_on_hand) == (
        EventKind.MARKETPLACE_COUNT,
        EventSource.MARKETPLACE,
        7,
    )
    _drain(shops.shopify)
    _drain(shops.amazon)
    assert shopify.quantity_on_channel(shops.shopify, shops.shopify.listings[0]) == 17
    assert amazon.writes_applied(shops.amazon, shops.fba_listing) == 0
    assert not PushAttempt.objects.filter(listing=shops.fba_listing).exists()


@pytest.mark.django_db
def test_reserved_and_unfulfillable_units_are_shown_and_never_become_available(amazon, shopify):
    """Units Amazon reserves, researches, cannot sell or expects are stored on the SKU and
    leave the sellable figure as Amazon's fulfillable count."""
    shops = _open(amazon, shopify, warehouse_units=0)
    _notify(amazon, shops, fulfillable=4)

    _notify(
        amazon,
        shops,
        fulfillable=1,
        reserved_pending_customer_order=3,
        unfulfillable_defective=6,
        researching=2,
        future_supply_buyable=9,
    )

    level = _fba_level(shops)
    assert (level.on_hand, level.available) == (1, 1)
    held = MarketplaceStock.objects.get(sku=shops.fba_listing.sku, location=shops.fba.location)
    assert (held.fulfillable, held.reserved, held.unfulfillable, held.researching) == (1, 3, 6, 2)
    assert held.future_supply == 9
    _drain(shops.shopify)
    assert shopify.quantity_on_channel(shops.shopify, shops.shopify.listings[0]) == 1


@pytest.mark.django_db
def test_the_scheduled_read_catches_a_count_whose_notification_was_dropped(amazon, shopify):
    """The notification is lost from the queue; getInventorySummaries brings the count in,
    and reading it again changes nothing."""
    shops = _open(amazon, shopify, warehouse_units=2)
    _notify(amazon, shops, fulfillable=5)
    queue_url = amazon.queues[shops.amazon.tenant]
    amazon.simulator.set_fba(
        shops.amazon.tenant, shops.fba_listing.external_id, fulfillable=3, reserved_fc_processing=2
    )
    deadline = time.monotonic() + 10
    while amazon.sqs.waiting(queue_url) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    amazon.sqs.client.purge_queue(QueueUrl=queue_url)

    assert marketplace_stock.read_marketplace_stock(channel_id=shops.amazon.channel.pk) == 1

    assert _fba_level(shops).on_hand == 3
    assert marketplace_stock.read_marketplace_stock(channel_id=shops.amazon.channel.pk) == 0
    _drain(shops.shopify)
    assert shopify.quantity_on_channel(shops.shopify, shops.shopify.listings[0]) == 5


@pytest.mark.django_db
def test_a_channel_cannot_sell_from_stock_it_holds_itself(amazon, shopify):
    """Amazon's own FBA location among its MFN locations would list FBA units as MFN."""
    shops = _open(amazon, shopify, warehouse_units=1)
    with pytest.raises(Exception, match="holds itself"):
        channel_services.set_channel_locations(
            channel_id=shops.amazon.channel.pk, location_ids=[shops.fba.location_id]
        )


@pytest.mark.django_db
def test_feed_processing_finished_wakes_the_settlement_of_its_channel(
    amazon, monkeypatch, django_capture_on_commit_callbacks
):
    """The notification that a feed ended asks for the channel's submissions at once."""
    warehouse = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, warehouse, 3)
    opened = amazon.open_channel(skus=[sku], location=warehouse)
    woken: list[tuple[int, float]] = []
    monkeypatch.setattr(
        enqueue,
        "enqueue_settlement",
        lambda *, channel_id, countdown: woken.append((channel_id, countdown)),
    )
    body = (
        b'{"NotificationType": "FEED_PROCESSING_FINISHED", "EventTime": '
        b'"2026-01-01T00:00:00Z", "Payload": {"feedProcessingFinishedNotification": '
        b'{"feedId": "50001", "processingStatus": "DONE"}}}'
    )
    receipt_id = receive.record_receipt(
        channel_id=opened.channel.pk,
        topic="FEED_PROCESSING_FINISHED",
        dedupe_key="feed-finished-50001",
        headers={},
        body=body,
    )
    assert receipt_id is not None

    with django_capture_on_commit_callbacks(execute=True):
        ingest.process_receipt(receipt_id=receipt_id)

    assert woken == [(opened.channel.pk, 0)]


@pytest.mark.django_db
def test_reconciliation_leaves_a_listing_the_channel_fulfils_itself_alone(amazon, shopify):
    """An FBA listing has no figure of nventory's on Amazon: reconciliation neither judges
    nor corrects it, whatever Amazon shows for it."""
    from reconciliation import services as reconciliation
    from reconciliation.models import Discrepancy

    shops = _open(amazon, shopify, warehouse_units=10)
    _notify(amazon, shops, fulfillable=7)

    run = reconciliation.reconcile_channel(channel_id=shops.amazon.channel.pk)

    assert run is not None and run.status == "done", run and run.error
    assert run.listings_checked == 0
    assert not Discrepancy.objects.filter(listing=shops.fba_listing).exists()
    assert not PushAttempt.objects.filter(listing=shops.fba_listing).exists()
