"""Processing stored webhook receipts into ledger events, incidents, gaps and drift."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from channels.models import (
    UNEXPLAINED_MOVES_WAIT_S,
    Channel,
    DriftRecord,
    ListingSyncState,
    OversellIncident,
    PendingPush,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import ingest, outbox, receive
from inventory.models import EventKind, EventSource, InventoryEvent, StockLevel
from tests import factories

pytestmark = pytest.mark.django_db

_deliveries = itertools.count(1)


@pytest.fixture
def warehouse():
    return factories.make_location()


@pytest.fixture
def channel(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shop")


@pytest.fixture
def shirt(warehouse):
    sku = factories.make_sku(code="TSHIRT-001")
    factories.stock(sku, warehouse, 10)
    return sku


@pytest.fixture
def shirt_listing(channel, shirt):
    return factories.make_listing(
        channel=channel,
        sku=shirt,
        external_id="30322695",
        external_sku="TSHIRT-001",
        extra_identifiers={"variant_id": "123456789"},
    )


def store(channel, topic: str, payload: object, *, webhook_id: str | None = None) -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    receipt_id = receive.record_receipt(
        channel_id=channel.pk,
        topic=topic,
        dedupe_key=webhook_id or f"delivery-{next(_deliveries)}",
        headers={"X-Shopify-Topic": topic},
        body=body,
    )
    assert receipt_id is not None
    return receipt_id


def deliver(channel, topic: str, payload: object, *, webhook_id: str | None = None):
    receipt_id = store(channel, topic, payload, webhook_id=webhook_id)
    ingest.process_receipt(receipt_id=receipt_id)
    return WebhookReceipt.objects.get(pk=receipt_id)


def order(*lines: tuple[int, int, dict], order_id: int = 5678901234) -> dict:
    return {
        "id": order_id,
        "line_items": [
            {"id": line_id, "quantity": quantity, **identifiers}
            for line_id, quantity, identifiers in lines
        ],
    }


def cancelled(order_payload: dict) -> dict:
    """The order as Shopify sends it once cancelled: with its cancelled_at."""
    return {**order_payload, "cancelled_at": "2026-11-27T10:05:00-05:00"}


def shirt_line(quantity: int = 2, line_id: int = 111) -> tuple[int, int, dict]:
    return (line_id, quantity, {"variant_id": 123456789, "sku": "TSHIRT-001"})


def refund(*lines: tuple[int, int, str], refund_id: int = 929361464) -> dict:
    return {
        "id": refund_id,
        "order_id": 5678901234,
        "refund_line_items": [
            {
                "id": index,
                "line_item_id": line_id,
                "quantity": quantity,
                "restock_type": restock_type,
                "line_item": {"id": line_id, "variant_id": 123456789, "sku": "TSHIRT-001"},
            }
            for index, (line_id, quantity, restock_type) in enumerate(lines, start=1)
        ],
    }


def level(sku, location) -> StockLevel:
    return StockLevel.objects.get(sku=sku, location=location)


def expect_channel_quantity(listing, quantity: int) -> None:
    ListingSyncState.objects.update_or_create(
        listing=listing,
        defaults={"expected_channel_quantity": quantity, "last_pushed_quantity": quantity},
    )


def expected_channel_quantity(listing) -> int | None:
    return ListingSyncState.objects.get(listing=listing).expected_channel_quantity


# --- orders --------------------------------------------------------------------------------


def test_order_commits_each_line_as_a_channel_event(channel, shirt, shirt_listing, warehouse):
    receipt = deliver(channel, "orders/create", order(shirt_line(2)))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    assert receipt.processed_at is not None
    assert level(shirt, warehouse).committed == 2
    event = InventoryEvent.objects.get(kind=EventKind.ORDER_COMMITTED)
    assert event.idempotency_key == f"shopify:{channel.pk}:order:5678901234:line:111:commit"
    assert (event.source, event.actor, event.external_reference) == (
        EventSource.CHANNEL,
        "shop",
        "5678901234",
    )


def test_same_receipt_processed_twice_commits_once(channel, shirt, shirt_listing, warehouse):
    receipt_id = store(channel, "orders/create", order(shirt_line(2)))
    ingest.process_receipt(receipt_id=receipt_id)
    ingest.process_receipt(receipt_id=receipt_id)

    assert level(shirt, warehouse).committed == 2
    assert WebhookReceipt.objects.get(pk=receipt_id).attempts == 1


def test_same_order_in_two_deliveries_is_committed_once(channel, shirt, shirt_listing, warehouse):
    """Idempotency keys name the order line, not the delivery."""
    expect_channel_quantity(shirt_listing, 10)
    first = deliver(channel, "orders/create", order(shirt_line(2)), webhook_id="a")
    second = deliver(channel, "orders/create", order(shirt_line(2)), webhook_id="b")

    assert first.status == second.status == WebhookReceipt.Status.PROCESSED
    assert level(shirt, warehouse).committed == 2
    assert InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).count() == 1
    assert expected_channel_quantity(shirt_listing) == 8


def test_order_lowers_the_quantity_expected_on_the_channel(channel, shirt_listing):
    expect_channel_quantity(shirt_listing, 10)
    deliver(channel, "orders/create", order(shirt_line(3)))
    assert expected_channel_quantity(shirt_listing) == 7


def test_line_is_committed_whole_at_the_location_with_most_available(channel, shirt, warehouse):
    bigger = factories.make_location()
    factories.stock(shirt, bigger, 15)
    channel.locations.add(bigger)
    factories.make_listing(channel=channel, sku=shirt, extra_identifiers={"variant_id": 123456789})

    deliver(channel, "orders/create", order(shirt_line(12)))

    assert level(shirt, bigger).committed == 12
    assert level(shirt, warehouse).committed == 0


def test_equal_availability_commits_at_the_lowest_location_pk(channel, shirt, warehouse):
    other = factories.make_location()
    factories.stock(shirt, other, 10)
    channel.locations.add(other)
    factories.make_listing(channel=channel, sku=shirt, extra_identifiers={"variant_id": 123456789})

    deliver(channel, "orders/create", order(shirt_line(1)))

    first, second = sorted([warehouse, other], key=lambda location: location.pk)
    assert level(shirt, first).committed == 1
    assert level(shirt, second).committed == 0


def test_order_beyond_stock_is_recorded_with_an_oversell_incident(
    channel, shirt, shirt_listing, warehouse
):
    receipt = deliver(channel, "orders/create", order(shirt_line(13)))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    stock_level = level(shirt, warehouse)
    assert (stock_level.on_hand, stock_level.committed) == (10, 13)
    event = InventoryEvent.objects.get(kind=EventKind.ORDER_COMMITTED)
    assert event.shortfall == 3
    incident = OversellIncident.objects.get()
    assert (incident.sku, incident.channel, incident.listing) == (shirt, channel, shirt_listing)
    assert (incident.order_reference, incident.shortfall) == ("5678901234", 3)
    assert (incident.event_id, incident.receipt_id) == (event.pk, receipt.pk)


def test_replayed_oversold_order_does_not_duplicate_the_incident(channel, shirt_listing):
    deliver(channel, "orders/create", order(shirt_line(13)), webhook_id="a")
    deliver(channel, "orders/create", order(shirt_line(13)), webhook_id="b")
    assert OversellIncident.objects.count() == 1


def test_unmapped_line_is_kept_and_the_rest_of_the_order_processed(
    channel, shirt, shirt_listing, warehouse
):
    unknown = (222, 4, {"variant_id": 999, "sku": "NOT-LISTED", "product_id": 5})
    receipt = deliver(channel, "orders/create", order(shirt_line(2), unknown))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    assert level(shirt, warehouse).committed == 2
    gap = UnmappedLine.objects.get()
    assert (gap.channel, gap.receipt, gap.line_reference, gap.quantity) == (
        channel,
        receipt,
        "222",
        4,
    )
    assert gap.identifiers == {"variant_id": "999", "sku": "NOT-LISTED", "product_id": "5"}


def test_line_of_a_listing_without_sku_is_a_gap(channel):
    factories.make_listing(channel=channel, sku=None, extra_identifiers={"variant_id": "77"})
    deliver(channel, "orders/create", order((1, 1, {"variant_id": 77})))
    assert UnmappedLine.objects.get().line_reference == "1"
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).exists()


def test_lines_map_by_variant_then_inventory_item_then_sku(channel, warehouse):
    by_variant, by_sku = factories.make_sku(), factories.make_sku()
    factories.stock(by_variant, warehouse, 5)
    factories.stock(by_sku, warehouse, 5)
    # A variant id stored as a JSON number still matches the string the parser gives.
    factories.make_listing(channel=channel, sku=by_variant, extra_identifiers={"variant_id": 5})
    factories.make_listing(channel=channel, sku=by_sku, external_sku="BY-SKU")

    deliver(
        channel,
        "orders/create",
        order(
            (1, 1, {"variant_id": 5, "sku": "BY-SKU"}), (2, 2, {"variant_id": 6, "sku": "BY-SKU"})
        ),
    )

    assert level(by_variant, warehouse).committed == 1
    assert level(by_sku, warehouse).committed == 2


def test_listing_of_another_channel_does_not_map(channel, shirt, warehouse):
    other = factories.make_channel(locations=[warehouse])
    factories.make_listing(channel=other, sku=shirt, extra_identifiers={"variant_id": "123456789"})
    deliver(channel, "orders/create", order(shirt_line(1)))
    assert UnmappedLine.objects.filter(channel=channel).count() == 1
    assert level(shirt, warehouse).committed == 0


# --- cancellations and refunds -------------------------------------------------------------


def test_cancel_releases_what_the_order_committed(channel, shirt, shirt_listing, warehouse):
    expect_channel_quantity(shirt_listing, 10)
    deliver(channel, "orders/create", order(shirt_line(3)))
    receipt = deliver(channel, "orders/cancelled", cancelled(order(shirt_line(3))))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    stock_level = level(shirt, warehouse)
    assert (stock_level.on_hand, stock_level.committed) == (10, 0)
    cancel = InventoryEvent.objects.get(kind=EventKind.ORDER_CANCELLED)
    assert cancel.idempotency_key.endswith(":order:5678901234:line:111:cancel")
    assert expected_channel_quantity(shirt_listing) == 10


def test_cancel_in_two_deliveries_releases_once(channel, shirt, shirt_listing, warehouse):
    factories.stock(shirt, warehouse, 5)
    deliver(channel, "orders/create", order(shirt_line(3)))
    deliver(channel, "orders/create", order(shirt_line(4), order_id=42))
    deliver(channel, "orders/cancelled", cancelled(order(shirt_line(3))), webhook_id="a")
    deliver(channel, "orders/cancelled", cancelled(order(shirt_line(3))), webhook_id="b")

    assert level(shirt, warehouse).committed == 4


def test_a_cancel_of_an_order_that_never_comes_waits_then_is_shown_and_changes_nothing(
    channel, shirt, shirt_listing
):
    """It waits for the platform's redelivery window (Shopify: 4 h), then is reported as
    an order that never came, nothing released."""
    receipt_id = store(channel, "orders/cancelled", cancelled(order(shirt_line(3))))
    ingest.process_receipt(receipt_id=receipt_id)
    receipt = WebhookReceipt.objects.get(pk=receipt_id)
    assert receipt.status == WebhookReceipt.Status.AWAITING_ORDER
    assert receipt.awaited_order == "5678901234"
    assert receipt.awaited_until is not None and receipt.received_at is not None
    assert receipt.awaited_until - receipt.received_at == dt.timedelta(hours=4)
    assert ingest.expire_awaiting_receipts() == 0
    WebhookReceipt.objects.filter(pk=receipt_id).update(
        awaited_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert ingest.expire_awaiting_receipts() == 1
    receipt = WebhookReceipt.objects.get(pk=receipt_id)
    assert receipt.status == WebhookReceipt.Status.ORDER_NEVER_CAME
    assert "never came" in receipt.error
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED).exists()


def test_a_cancel_processed_before_its_order_releases_it_once_the_order_arrives(
    channel, shirt, shirt_listing, warehouse
):
    cancel_id = store(channel, "orders/cancelled", cancelled(order(shirt_line(3))))
    ingest.process_receipt(receipt_id=cancel_id)
    assert WebhookReceipt.objects.get(pk=cancel_id).status == "awaiting_order"
    deliver(channel, "orders/create", order(shirt_line(3)))
    assert WebhookReceipt.objects.get(pk=cancel_id).status == WebhookReceipt.Status.PROCESSED
    assert level(shirt, warehouse).committed == 0
    assert level(shirt, warehouse).on_hand == 10


def test_cancel_reported_as_order_and_as_refund_releases_once(
    channel, shirt, shirt_listing, warehouse
):
    """Shopify sends orders/cancelled and a refund with restock type "cancel" for one cancel."""
    factories.stock(shirt, warehouse, 5)
    deliver(channel, "orders/create", order(shirt_line(3)))
    deliver(channel, "orders/create", order(shirt_line(4), order_id=42))
    deliver(channel, "refunds/create", refund((111, 3, "cancel")))
    deliver(channel, "orders/cancelled", cancelled(order(shirt_line(3))))

    assert level(shirt, warehouse).committed == 4


def test_refund_with_cancel_restock_releases_committed(channel, shirt, shirt_listing, warehouse):
    expect_channel_quantity(shirt_listing, 10)
    deliver(channel, "orders/create", order(shirt_line(3)))
    deliver(channel, "refunds/create", refund((111, 1, "cancel")))

    stock_level = level(shirt, warehouse)
    assert (stock_level.on_hand, stock_level.committed) == (10, 2)
    assert expected_channel_quantity(shirt_listing) == 8


def test_refund_with_return_restocks_on_hand(channel, shirt, shirt_listing, warehouse):
    expect_channel_quantity(shirt_listing, 10)
    deliver(channel, "orders/create", order(shirt_line(3)))
    receipt = deliver(channel, "refunds/create", refund((111, 2, "return")))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    stock_level = level(shirt, warehouse)
    assert (stock_level.on_hand, stock_level.committed) == (12, 3)
    event = InventoryEvent.objects.get(kind=EventKind.RETURN_RESTOCKED)
    assert event.idempotency_key == (
        f"shopify:{channel.pk}:order:5678901234:refund:929361464:line:111"
    )
    assert expected_channel_quantity(shirt_listing) == 9


def test_refund_without_restock_changes_no_stock(channel, shirt, shirt_listing, warehouse):
    expect_channel_quantity(shirt_listing, 10)
    deliver(channel, "orders/create", order(shirt_line(3)))
    receipt = deliver(channel, "refunds/create", refund((111, 2, "no_restock")))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    stock_level = level(shirt, warehouse)
    assert (stock_level.on_hand, stock_level.committed) == (10, 3)
    assert expected_channel_quantity(shirt_listing) == 7


def test_same_refund_in_two_deliveries_restocks_once(channel, shirt, shirt_listing, warehouse):
    deliver(channel, "orders/create", order(shirt_line(3)))
    deliver(channel, "refunds/create", refund((111, 2, "return")), webhook_id="a")
    deliver(channel, "refunds/create", refund((111, 2, "return")), webhook_id="b")
    assert level(shirt, warehouse).on_hand == 12


def test_two_refunds_of_one_line_both_restock(channel, shirt, shirt_listing, warehouse):
    deliver(channel, "orders/create", order(shirt_line(3)))
    deliver(channel, "refunds/create", refund((111, 1, "return"), refund_id=1))
    deliver(channel, "refunds/create", refund((111, 1, "return"), refund_id=2))
    assert level(shirt, warehouse).on_hand == 12


# --- inventory levels ----------------------------------------------------------------------


def inventory_level(available: int, item_id: int = 30322695, **fields) -> dict:
    return {"inventory_item_id": item_id, "available": available, **fields}


def test_inventory_change_records_drift_and_owes_a_push(channel, shirt, shirt_listing):
    expect_channel_quantity(shirt_listing, 10)
    PendingPush.objects.all().delete()

    receipt = deliver(channel, "inventory_levels/update", inventory_level(4))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    drift = DriftRecord.objects.get()
    assert (drift.channel, drift.listing, drift.detected_by) == (
        channel,
        shirt_listing,
        DriftRecord.DetectedBy.WEBHOOK,
    )
    assert (drift.expected_quantity, drift.channel_quantity, drift.master_quantity) == (10, 4, 10)
    assert expected_channel_quantity(shirt_listing) == 4
    assert PendingPush.objects.filter(listing=shirt_listing).exists()


def test_inventory_change_matching_what_we_expected_is_not_drift(channel, shirt_listing):
    """The echo of our own push must not cause another push."""
    expect_channel_quantity(shirt_listing, 10)
    PendingPush.objects.all().delete()

    deliver(channel, "inventory_levels/update", inventory_level(10))

    assert not DriftRecord.objects.exists()
    assert not PendingPush.objects.exists()


def test_inventory_change_from_before_our_last_write_is_not_drift(channel, shirt_listing):
    """Shopify reports every change, our own writes too; a figure we wrote over is old news."""
    ListingSyncState.objects.create(
        listing=shirt_listing,
        expected_channel_quantity=8,
        last_pushed_quantity=8,
        last_pushed_at=dt.datetime(2026, 11, 27, 10, 0, 1, tzinfo=dt.UTC),
    )
    PendingPush.objects.all().delete()

    deliver(
        channel,
        "inventory_levels/update",
        inventory_level(10, updated_at="2026-11-27T05:00:00-05:00"),  # 10:00:00 UTC
    )
    assert not DriftRecord.objects.exists()
    assert not PendingPush.objects.exists()

    deliver(
        channel,
        "inventory_levels/update",
        inventory_level(7, updated_at="2026-11-27T05:00:02-05:00"),
    )
    assert DriftRecord.objects.get().channel_quantity == 7


def test_a_level_stamped_no_later_than_the_newest_order_ingested_is_old_news(
    channel, shirt, shirt_listing
):
    expect_channel_quantity(shirt_listing, 10)
    deliver(
        channel,
        "orders/create",
        order(shirt_line(2)) | {"created_at": "2026-11-27T10:00:05-05:00"},
    )
    assert expected_channel_quantity(shirt_listing) == 8

    # Stamped in that second (another sale's, or this one's before it): cannot be ordered.
    deliver(
        channel,
        "inventory_levels/update",
        inventory_level(9, updated_at="2026-11-27T10:00:05-05:00"),
    )
    deliver(
        channel,
        "inventory_levels/update",
        inventory_level(10, updated_at="2026-11-27T10:00:04-05:00"),
    )
    assert not DriftRecord.objects.exists()

    deliver(
        channel,
        "inventory_levels/update",
        inventory_level(3, updated_at="2026-11-27T10:00:06-05:00"),
    )
    assert DriftRecord.objects.get().channel_quantity == 3


def test_a_sale_reported_as_a_level_before_its_order_is_counted_once(
    channel, shirt, shirt_listing, warehouse
):
    expect_channel_quantity(shirt_listing, 10)

    deliver(channel, "inventory_levels/update", inventory_level(8))
    deliver(channel, "orders/create", order(shirt_line(2)))

    assert level(shirt, warehouse).committed == 2
    # The channel shows 8: its sale of 2, once, not 10 - 2 - 2.
    assert expected_channel_quantity(shirt_listing) == 8
    assert ListingSyncState.objects.get(listing=shirt_listing).unexplained_channel_moves == 0
    drift = DriftRecord.objects.get()
    assert drift.explained and drift.explained_by == "orders/create 5678901234"


def test_an_edit_on_the_channel_waits_as_unexplained_only_for_a_while(channel, shirt_listing):
    expect_channel_quantity(shirt_listing, 10)

    deliver(channel, "inventory_levels/update", inventory_level(4))

    state = ListingSyncState.objects.get(listing=shirt_listing)
    assert (state.expected_channel_quantity, state.unexplained_channel_moves) == (4, -6)
    assert state.unexplained_moves_until is not None
    assert state.unexplained_moves_until > timezone.now()


def test_inventory_change_during_a_push_to_the_listing_is_left_to_that_push(
    channel, shirt_listing
):
    """Mostly the write's own echo; compared with the figure expected before the write it
    would pass for drift. A real edit is caught by the next compare-and-set instead."""
    expect_channel_quantity(shirt_listing, 10)
    outbox.mark_listings_owed(listing_ids=[shirt_listing.pk])
    PendingPush.objects.filter(listing=shirt_listing).update(
        claimed_until=timezone.now() + dt.timedelta(seconds=60)
    )

    receipt = deliver(channel, "inventory_levels/update", inventory_level(4))

    assert receipt.status == WebhookReceipt.Status.PROCESSED
    assert receipt.attempts == 1
    assert not DriftRecord.objects.exists()
    assert expected_channel_quantity(shirt_listing) == 10


def test_inventory_change_after_a_push_finished_is_compared_at_once(channel, shirt_listing):
    expect_channel_quantity(shirt_listing, 10)
    outbox.mark_listings_owed(listing_ids=[shirt_listing.pk])
    PendingPush.objects.filter(listing=shirt_listing).update(
        claimed_until=timezone.now() - dt.timedelta(seconds=1)
    )
    deliver(channel, "inventory_levels/update", inventory_level(4))
    assert DriftRecord.objects.get().channel_quantity == 4


def test_inventory_change_matches_a_listing_holding_a_gid(channel, shirt):
    listing = factories.make_listing(
        channel=channel, sku=shirt, external_id="gid://shopify/InventoryItem/555"
    )
    expect_channel_quantity(listing, 10)
    deliver(channel, "inventory_levels/update", inventory_level(3, item_id=555))
    assert DriftRecord.objects.get().listing == listing


def test_inventory_change_at_another_location_is_not_ours(channel, shirt_listing):
    channel.platform_settings = {"location_id": "gid://shopify/Location/1"}
    channel.save()
    expect_channel_quantity(shirt_listing, 10)

    deliver(channel, "inventory_levels/update", inventory_level(3, location_id=2))
    assert not DriftRecord.objects.exists()

    deliver(channel, "inventory_levels/update", inventory_level(3, location_id=1))
    assert DriftRecord.objects.count() == 1


def test_inventory_change_of_an_unknown_item_is_a_gap(channel):
    deliver(channel, "inventory_levels/update", inventory_level(3, item_id=404))
    assert UnmappedLine.objects.get().identifiers == {"inventory_item_id": "404"}


# --- receipts that are not applied ---------------------------------------------------------


def test_unparseable_body_is_quarantined_and_changes_no_stock(
    channel, shirt, shirt_listing, warehouse
):
    receipt = deliver(channel, "orders/create", b"{not json")

    assert receipt.status == WebhookReceipt.Status.QUARANTINED
    assert "not valid JSON" in receipt.error
    assert level(shirt, warehouse).committed == 0


def test_quarantined_receipt_is_not_processed_again(channel, shirt_listing):
    receipt = deliver(channel, "orders/create", b"[]")
    ingest.process_receipt(receipt_id=receipt.pk)
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == (WebhookReceipt.Status.QUARANTINED, 1)


def test_topic_not_acted_on_is_ignored(channel):
    receipt = deliver(channel, "products/update", {"id": 1})
    assert receipt.status == WebhookReceipt.Status.IGNORED


def test_error_marks_the_receipt_failed_and_is_raised_again(
    channel, shirt, shirt_listing, warehouse
):
    receipt_id = store(channel, "orders/create", order(shirt_line(2)))
    with (
        mock.patch("inventory.services.commit_order", side_effect=RuntimeError("db gone")),
        pytest.raises(RuntimeError, match="db gone"),
    ):
        ingest.process_receipt(receipt_id=receipt_id)

    receipt = WebhookReceipt.objects.get(pk=receipt_id)
    assert (receipt.status, receipt.attempts) == (WebhookReceipt.Status.FAILED, 1)
    assert receipt.error == "RuntimeError: db gone"
    assert receipt.processed_at is None

    ingest.process_receipt(receipt_id=receipt_id)
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts, receipt.error) == (
        WebhookReceipt.Status.PROCESSED,
        2,
        "",
    )
    assert level(shirt, warehouse).committed == 2


def test_channel_without_a_location_fails_the_receipt(channel, shirt_listing):
    channel.locations.clear()
    receipt_id = store(channel, "orders/create", order(shirt_line(1)))
    with pytest.raises(ingest.IngestError, match="no active location"):
        ingest.process_receipt(receipt_id=receipt_id)
    assert WebhookReceipt.objects.get(pk=receipt_id).status == WebhookReceipt.Status.FAILED


def test_receipt_out_of_attempts_is_left_alone(channel, shirt, shirt_listing, warehouse):
    receipt_id = store(channel, "orders/create", order(shirt_line(1)))
    WebhookReceipt.objects.filter(pk=receipt_id).update(
        status=WebhookReceipt.Status.FAILED, attempts=ingest.MAX_RECEIPT_ATTEMPTS
    )
    ingest.process_receipt(receipt_id=receipt_id)
    assert level(shirt, warehouse).committed == 0


# --- sweep ---------------------------------------------------------------------------------


def test_sweep_enqueues_old_received_and_failed_receipts_with_attempts_left(channel):
    import datetime as dt

    from django.utils import timezone

    old = timezone.now() - dt.timedelta(minutes=5)
    received = store(channel, "orders/create", order(shirt_line()))
    failed = store(channel, "orders/create", order(shirt_line()))
    exhausted = store(channel, "orders/create", order(shirt_line()))
    processed = store(channel, "orders/create", order(shirt_line()))
    store(channel, "orders/create", order(shirt_line()))  # too young: its own enqueue is due
    WebhookReceipt.objects.filter(pk__in=[received, failed, exhausted, processed]).update(
        received_at=old
    )
    WebhookReceipt.objects.filter(pk=failed).update(status="failed", attempts=2)
    WebhookReceipt.objects.filter(pk=exhausted).update(status="failed", attempts=5)
    WebhookReceipt.objects.filter(pk=processed).update(status="processed")

    with mock.patch("channels.pipeline.enqueue.retry_webhook_processing") as enqueue:
        assert ingest.sweep_unprocessed_receipts(older_than_s=30) == 2

    assert sorted(call.args[0] for call in enqueue.call_args_list) == sorted([received, failed])


# --- concurrency ---------------------------------------------------------------------------


def _listed_shirt_without_workers(monkeypatch):
    """For tests on committed data: a listed SKU, with no task enqueued and no pusher woken."""
    monkeypatch.setattr(
        "channels.pipeline.enqueue.enqueue_webhook_processing", lambda receipt_id: None
    )
    monkeypatch.setattr("channels.pipeline.outbox.wake_pushers", lambda **kwargs: None)
    warehouse = factories.make_location()
    channel = factories.make_channel(locations=[warehouse])
    sku = factories.make_sku()
    factories.stock(sku, warehouse, 10)
    factories.make_listing(channel=channel, sku=sku, extra_identifiers={"variant_id": "123456789"})
    return warehouse, channel, sku


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_racing_on_one_order_commit_it_once(monkeypatch):
    """Two deliveries of one order, each processed twice, by four threads at once."""
    import threading

    from django.db import connection

    warehouse, channel, sku = _listed_shirt_without_workers(monkeypatch)
    receipt_ids = [store(channel, "orders/create", order(shirt_line(3))) for _ in range(2)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(receipt_id: int) -> None:
        try:
            start.wait()
            ingest.process_receipt(receipt_id=receipt_id)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(rid,)) for rid in receipt_ids * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert level(sku, warehouse).committed == 3
    assert set(WebhookReceipt.objects.values_list("status", flat=True)) == {"processed"}


# --- ingest runs ---------------------------------------------------------------------------


def test_an_ingest_run_applies_every_new_receipt_and_leaves_tried_ones(
    channel, shirt, shirt_listing, warehouse
):
    new = [
        store(channel, "orders/create", order(shirt_line(1), order_id=order_id))
        for order_id in (1001, 1002, 1003)
    ]
    tried = store(channel, "orders/create", order(shirt_line(1), order_id=1004))
    WebhookReceipt.objects.filter(pk=tried).update(status="failed", attempts=1)
    retried: list[tuple[int, float]] = []

    assert ingest.process_new_receipts(retry=lambda *args: retried.append(args), batch_size=2) == 3

    statuses = dict(WebhookReceipt.objects.values_list("pk", "status"))
    assert [statuses[pk] for pk in new] == ["processed"] * 3
    assert statuses[tried] == "failed"  # its own task and the sweep retry it
    assert level(shirt, warehouse).committed == 3
    assert retried == []


@pytest.mark.django_db(transaction=True)  # each receipt's transaction commits
def test_an_ingest_run_wakes_the_pushers_once_for_its_batch_after_applying_it(
    channel, shirt, shirt_listing, warehouse, monkeypatch
):
    """One query of the channels owed and one wake-up for the batch, not one per receipt;
    and only once every receipt of the batch is applied."""
    for order_id in (3001, 3002, 3003):
        store(channel, "orders/create", order(shirt_line(1), order_id=order_id))
    woken: list[tuple[set[int], int]] = []
    monkeypatch.setattr(
        outbox,
        "wake_pushers",
        lambda *, channel_ids: woken.append((set(channel_ids), level(shirt, warehouse).committed)),
    )

    assert ingest.process_new_receipts(retry=lambda *args: None, batch_size=10) == 3

    assert woken == [({channel.pk}, 3)]


def test_an_ingest_run_that_fails_gives_its_wake_flag_back(monkeypatch):
    """Otherwise the webhooks of the next seconds wake nothing until the flag lapses."""
    from django.db import OperationalError

    from channels import tasks
    from channels.pipeline import ratelimit

    def database_gone(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    ratelimit.release_ingest_wake()
    assert ratelimit.claim_ingest_wake()  # as the webhook that queued this run did
    monkeypatch.setattr(ingest, "process_new_receipts", database_gone)

    with pytest.raises(OperationalError):
        tasks.process_new_webhooks()

    assert ratelimit.claim_ingest_wake()  # free again: the next webhook queues a run
    ratelimit.release_ingest_wake()


@pytest.mark.django_db(transaction=True)  # each receipt's transaction commits
def test_an_ingest_run_looks_once_more_a_moment_after_giving_its_flag_back(
    channel, shirt, shirt_listing, warehouse, monkeypatch
):
    """A webhook committed just after the run gave the flag back, whose wake-up trusted the
    flag it had seen taken a moment before, is applied by that run's last look."""
    from channels import tasks
    from channels.pipeline import ratelimit

    waits: list[float] = []

    def webhook_arrives_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        store(channel, "orders/create", order(shirt_line(1), order_id=3101))

    monkeypatch.setattr(tasks.time, "sleep", webhook_arrives_meanwhile)
    ratelimit.release_ingest_wake()
    assert ratelimit.claim_ingest_wake()  # as the webhook that queued this run did

    assert tasks.process_new_webhooks() == 1

    assert waits == [ratelimit.INGEST_LAST_LOOK_AFTER_S]
    assert ratelimit.INGEST_LAST_LOOK_AFTER_S > ratelimit.INGEST_FLAG_TRUSTED_S
    assert level(shirt, warehouse).committed == 1
    ratelimit.release_ingest_wake()


def test_an_ingest_run_leaves_a_cancellation_ahead_of_its_order_waiting_not_retried(
    channel, shirt, shirt_listing
):
    """No retry and its backoff: the cancellation waits for its order, for as long as the
    platform may still deliver it."""
    cancellation = store(
        channel, "orders/cancelled", cancelled(order(shirt_line(1), order_id=2001))
    )
    retried: list[tuple[int, float]] = []

    ingest.process_new_receipts(retry=lambda *args: retried.append(args))

    assert retried == []
    assert WebhookReceipt.objects.get(pk=cancellation).status == "awaiting_order"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_claimed_receipt_locked_for_a_moment_elsewhere_is_applied_not_skipped(monkeypatch):
    """Another worker's claim statement can hold the row for a moment as it passes over it:
    the worker whose try it is waits, rather than leave it for the sweep."""
    import threading
    import time

    from django.db import connection, connections

    warehouse, channel, sku = _listed_shirt_without_workers(monkeypatch)
    receipt_id = store(channel, "orders/create", order(shirt_line(1)))
    WebhookReceipt.objects.filter(pk=receipt_id).update(attempts=1)  # claimed by us
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM channels_webhookreceipt WHERE id = %s FOR UPDATE", [receipt_id]
                )
                locked.set()
                release.wait(5)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    ingest._process_claimed(receipt_id)
    holder.join()

    assert time.monotonic() - started >= 0.2  # it waited for the lock
    assert WebhookReceipt.objects.get(pk=receipt_id).status == "processed"
    assert StockLevel.objects.get(sku=sku, location=warehouse).committed == 1


def test_an_order_body_resent_as_a_cancellation_releases_nothing(
    channel, shirt, shirt_listing, warehouse
):
    """The topic header is not signed: a captured orders/create body sent again as
    orders/cancelled contradicts its body (no cancelled_at) and is quarantined."""
    placed = order(shirt_line(3))
    deliver(channel, "orders/create", placed)
    receipt = deliver(channel, "orders/cancelled", placed)
    assert receipt.status == WebhookReceipt.Status.QUARANTINED
    assert "contradicts" in receipt.error
    assert level(shirt, warehouse).committed == 3


def test_absorbed_units_explain_recent_drift_of_their_sign_oldest_first(channel, shirt_listing):
    def drift(expected: int, found: int, *, explained: int = 0, age_s: float = 0) -> int:
        record = factories.make_drift(
            shirt_listing, expected=expected, found=found, explained_units=explained
        )
        if age_s:
            DriftRecord.objects.filter(pk=record.pk).update(
                created_at=timezone.now() - dt.timedelta(seconds=age_s)
            )
        return record.pk

    too_old = drift(10, 7, age_s=3 * UNEXPLAINED_MOVES_WAIT_S)
    first = drift(10, 8, explained=1)  # one of its two units explained already
    a_rise = drift(8, 9)
    second = drift(9, 6)
    third = drift(6, 5)

    ingest._explain_drift(listing_id=shirt_listing.pk, absorbed=-3, explained_by="orders/create 7")

    explained = {
        record.pk: (record.explained_units, record.explained_by)
        for record in DriftRecord.objects.all()
    }
    assert explained == {
        too_old: (0, ""),
        first: (2, "orders/create 1, orders/create 7"),
        a_rise: (0, ""),
        second: (2, "orders/create 7"),
        third: (0, ""),
    }


def test_a_receipt_is_read_with_its_channel_as_the_channel_row_is_now(channel):
    """Its channel is kept between receipts and read again whenever its row has changed:
    by another transaction, or twice by the same one (this test runs in one)."""
    first = store(channel, "orders/create", order(shirt_line()))
    second = store(channel, "orders/create", order(shirt_line(), order_id=2))

    def channel_of(receipt_id: int) -> Channel:
        receipt = ingest._lock_receipt(receipt_id)
        assert receipt is not None
        return receipt.channel

    assert channel_of(first).name == channel.name
    for name in ("Renamed", "Renamed again", "And again"):
        Channel.objects.filter(pk=channel.pk).update(name=name)
        assert channel_of(second).name == name

    one, other = channel_of(first), channel_of(second)
    one.name = "Changed by one receipt only"
    assert (one.pk, other.name) == (channel.pk, "And again")
    assert channel_of(first).name == "And again"
