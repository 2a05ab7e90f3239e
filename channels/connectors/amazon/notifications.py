"""Amazon's notifications (§2.1): pulled from the channel's SQS queue, parsed from the
envelope. Parsing is pure functions over bytes, tested without a channel or a database.

No signature: trust comes from the queue's IAM policy, so the queue's credentials are the
channel's secret. A message is deleted only once its receipt is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from channels.connectors.payloads import load_json
from channels.connectors.types import (
    MarketplaceStockCount,
    MessageKind,
    MessageLine,
    PulledNotification,
    StockEffect,
    WebhookMessage,
    WebhookParseError,
)
from inventory.models import MAX_QUANTITY

ORDER_CHANGE = "ORDER_CHANGE"
FBA_INVENTORY_CHANGES = "FBA_INVENTORY_AVAILABILITY_CHANGES"
FEED_PROCESSING_FINISHED = "FEED_PROCESSING_FINISHED"
# A polled order's cancellation: its own topic, so the order poll's "already committed"
# filter (``Connector.order_placed_topic``) never drops it.
ORDER_CANCELLED_POLLED = "ORDER_CHANGE/Canceled"
# §2.1: these statuses release what the order committed.
CANCELLED_STATUSES = frozenset({"Canceled"})


def pulled_of_sqs(message: Mapping[str, Any]) -> PulledNotification:
    """One SQS message as a pulled notification; the dedupe key is the envelope's
    ``NotificationMetadata.NotificationId`` (SQS's own MessageId differs per copy)."""
    body = str(message.get("Body", ""))
    topic, dedupe_key = "", f"sqs:{message.get('MessageId', '')}"
    try:
        envelope = load_json(body)
        topic = str(envelope.get("NotificationType") or "")
        notification_id = (envelope.get("NotificationMetadata") or {}).get("NotificationId")
        if notification_id:
            dedupe_key = str(notification_id)
    except (ValueError, AttributeError):
        pass  # stored as it came; ingest quarantines it with the reason
    return PulledNotification(
        topic=topic,
        dedupe_key=dedupe_key,
        body=body.encode(),
        receipt_handle=str(message.get("ReceiptHandle", "")),
    )


def parse_notification(topic: str, body: bytes) -> WebhookMessage:
    """ORDER_CHANGE: a live order commits its MFN lines, a cancelled one releases them.
    FBA_INVENTORY_AVAILABILITY_CHANGES: Amazon's counts of its stock of one SKU.
    FEED_PROCESSING_FINISHED: the channel's submissions can be settled now. Every other
    type is stored and not acted on."""
    envelope = load_json(body)
    if not isinstance(envelope, dict):
        raise WebhookParseError("The notification is not a JSON object.")
    kind = envelope.get("NotificationType") or topic
    if kind == FBA_INVENTORY_CHANGES:
        return _fba_changes(envelope)
    if kind == FEED_PROCESSING_FINISHED:
        # §2.2: the feed ended (DONE, FATAL or CANCELLED); its report says the rest.
        feed_id = str(
            ((envelope.get("Payload") or {}).get("feedProcessingFinishedNotification") or {}).get(
                "feedId"
            )
            or ""
        )
        return WebhookMessage(kind=MessageKind.WRITES_FINISHED, reference=feed_id)
    if kind not in (ORDER_CHANGE, ORDER_CANCELLED_POLLED):
        return WebhookMessage(kind=MessageKind.IGNORED, reference="")
    try:
        change = envelope["Payload"]["OrderChangeNotification"]
        order_id = str(change["AmazonOrderId"])
        summary = change["Summary"]
        items = summary.get("OrderItems") or []
    except (KeyError, TypeError) as error:
        raise WebhookParseError(f"ORDER_CHANGE without {error}") from None
    # §2.6: FBA (AFN) orders ship Amazon's stock, never the master's.
    if summary.get("FulfillmentType") == "AFN":
        return WebhookMessage(kind=MessageKind.IGNORED, reference=order_id)
    cancelled = summary.get("OrderStatus") in CANCELLED_STATUSES or bool(
        summary.get("IsBuyerRequestedCancel")
    )
    lines = tuple(_line(item, cancelled) for item in items)
    occurred = (change.get("OrderChangeTrigger") or {}).get("TimeOfOrderChange")
    return WebhookMessage(
        kind=MessageKind.ORDER_CANCELLED if cancelled else MessageKind.ORDER_PLACED,
        reference=order_id,
        lines=lines,
        occurred_at=_time(occurred or envelope.get("EventTime")),
    )


def _fba_changes(envelope: Mapping[str, Any]) -> WebhookMessage:
    """§2.1 payload, §2.6 states: ``Fulfillable`` is the only sellable figure."""
    try:
        payload = envelope["Payload"]
        sku = str(payload["SKU"])
        by_marketplace = payload.get("FulfillmentInventoryByMarketplace") or []
        counted_at = _time(envelope.get("EventTime"))
        if counted_at is None:
            raise KeyError("EventTime")
        counts = tuple(
            _fba_count(sku, str(entry["MarketplaceId"]), entry["FulfillmentInventory"], counted_at)
            for entry in by_marketplace
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise WebhookParseError(f"FBA_INVENTORY_AVAILABILITY_CHANGES without {error}") from None
    return WebhookMessage(kind=MessageKind.MARKETPLACE_STOCK, reference=sku, stock_counts=counts)


def _fba_count(
    sku: str, marketplace_id: str, inventory: Mapping[str, Any], counted_at: dt.datetime
) -> MarketplaceStockCount:
    inbound = inventory.get("InboundQuantityBreakdown") or {}
    reserved = inventory.get("ReservedQuantityBreakdown") or {}
    return MarketplaceStockCount(
        external_sku=sku,
        marketplace_id=marketplace_id,
        fulfillable=_count(inventory["Fulfillable"]),
        counted_at=counted_at,
        inbound=_count(sum(_count(value or 0) for value in inbound.values())),
        reserved=_count(sum(_count(value or 0) for value in reserved.values())),
        researching=_count(inventory.get("Researching") or 0),
        unfulfillable=_count(inventory.get("Unfulfillable") or 0),
        # §2.1: the notification carries the buyable future supply only.
        future_supply=_count(inventory.get("FutureSupplyBuyable") or 0),
        details=dict(inventory),
    )


def fba_count_of_summary(
    summary: Mapping[str, Any], *, marketplace_id: str, read_at: dt.datetime
) -> MarketplaceStockCount:
    """One getInventorySummaries summary with details (§2.3, §2.6 field names)."""
    details = summary.get("inventoryDetails") or {}
    future = details.get("futureSupplyQuantity") or {}
    return MarketplaceStockCount(
        external_sku=str(summary["sellerSku"]),
        marketplace_id=marketplace_id,
        fulfillable=int(details.get("fulfillableQuantity") or 0),
        counted_at=_time(summary.get("lastUpdatedTime")) or read_at,
        inbound=int(details.get("inboundWorkingQuantity") or 0)
        + int(details.get("inboundShippedQuantity") or 0)
        + int(details.get("inboundReceivingQuantity") or 0),
        reserved=int((details.get("reservedQuantity") or {}).get("totalReservedQuantity") or 0),
        researching=int(
            (details.get("researchingQuantity") or {}).get("totalResearchingQuantity") or 0
        ),
        unfulfillable=int(
            (details.get("unfulfillableQuantity") or {}).get("totalUnfulfillableQuantity") or 0
        ),
        future_supply=int(future.get("reservedFutureSupplyQuantity") or 0)
        + int(future.get("futureSupplyBuyableQuantity") or 0),
        details=dict(details),
    )


def _count(value: object) -> int:
    """A count of units as Amazon sends it (a number, or digits in a string), within
    0..MAX_QUANTITY; ``ValueError`` for anything else (the notification is quarantined)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 30:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise ValueError(f"a count of units, got {str(value)[:40]!r}")
    return value


def _line(item: Mapping[str, Any], cancelled: bool) -> MessageLine:
    reference = str(item.get("OrderItemId") or item.get("SellerSKU") or "")
    sku = str(item.get("SellerSKU") or "")
    problem = "" if sku else "The order item has no SellerSKU."
    quantity = item.get("Quantity", item.get("QuantityOrdered", 0))
    if isinstance(quantity, str) and quantity.isascii() and quantity.isdigit():
        quantity = int(quantity) if len(quantity) <= 30 else MAX_QUANTITY + 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        quantity, problem = 0, f"Bad Quantity {str(quantity)[:40]!r}."
    elif quantity > MAX_QUANTITY:
        quantity, problem = 0, f"Quantity {quantity} is beyond {MAX_QUANTITY}."
    return MessageLine(
        reference=reference,
        quantity=quantity,
        identifiers={"sku": sku, "seller_sku": sku} if sku else {},
        stock_effect=StockEffect.RELEASE if cancelled else StockEffect.NONE,
        problem=problem,
    )


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def order_change_envelope(
    *, seller_id: str, order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A polled order (getOrders + getOrderItems) in the ORDER_CHANGE shape its parser
    reads, so both paths commit the same lines under the same keys."""
    status = str(order.get("OrderStatus", ""))
    return {
        "NotificationType": ORDER_CHANGE,
        "EventTime": order.get("LastUpdateDate"),
        "Payload": {
            "OrderChangeNotification": {
                "SellerId": seller_id,
                "AmazonOrderId": order.get("AmazonOrderId"),
                "OrderChangeTrigger": {"TimeOfOrderChange": order.get("LastUpdateDate")},
                "Summary": {
                    "MarketplaceId": order.get("MarketplaceId"),
                    "OrderStatus": status,
                    "FulfillmentType": order.get("FulfillmentChannel"),
                    "PurchaseDate": order.get("PurchaseDate"),
                    "IsBuyerRequestedCancel": bool(order.get("IsBuyerRequestedCancel")),
                    "OrderItems": [
                        {
                            "OrderItemId": item.get("OrderItemId"),
                            "SellerSKU": item.get("SellerSKU"),
                            "Quantity": item.get("QuantityOrdered"),
                        }
                        for item in items
                    ],
                },
            }
        },
    }
