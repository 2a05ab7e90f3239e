"""Amazon's notifications (§2.1): pulled from the channel's SQS queue, parsed from the
envelope. Parsing is pure functions over bytes, tested without a channel or a database.

No signature: trust comes from the queue's IAM policy, so the queue's credentials are the
channel's secret. A message is deleted only once its receipt is stored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from channels.connectors.types import (
    MessageKind,
    MessageLine,
    PulledNotification,
    StockEffect,
    WebhookMessage,
    WebhookParseError,
)

ORDER_CHANGE = "ORDER_CHANGE"
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
        envelope = json.loads(body)
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
    """ORDER_CHANGE: a live order commits its MFN lines, a cancelled one releases them;
    every other type is stored and not acted on."""
    try:
        envelope = json.loads(body)
    except ValueError as error:
        raise WebhookParseError(f"Not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise WebhookParseError("The notification is not a JSON object.")
    kind = envelope.get("NotificationType") or topic
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


def _line(item: Mapping[str, Any], cancelled: bool) -> MessageLine:
    reference = str(item.get("OrderItemId") or item.get("SellerSKU") or "")
    sku = str(item.get("SellerSKU") or "")
    problem = "" if sku else "The order item has no SellerSKU."
    try:
        quantity = int(item.get("Quantity", item.get("QuantityOrdered", 0)))
    except (TypeError, ValueError):
        quantity, problem = 0, f"Bad Quantity {item.get('Quantity')!r}."
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
