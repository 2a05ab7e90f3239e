"""Walmart's webhooks (§3.1): the ``source``/``payload`` envelope, auth, three attempts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from channels.simulators.harness import Delivery, RetryPolicy
from channels.simulators.walmart.state import Order, OrderLine, Seller

# §3.1 (WM2): Walmart expects a 200 and retries twice more, three attempts in all. No
# response timeout is documented [M]: 5 s.
RETRIES = 2
CONNECT_TIMEOUT_S = 1.0
RESPONSE_TIMEOUT_S = 5.0


def retry_policy(seller: Seller) -> RetryPolicy:
    return RetryPolicy(
        retries=RETRIES,
        base_s=seller.settings.webhook_retry_base_s,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        response_timeout_s=RESPONSE_TIMEOUT_S,
    )


def auth_value(seller: Seller, body: bytes) -> str:
    """§3.1: HMAC-SHA256 of the complete payload keyed with the secret (hex by default,
    [M]), or for BASIC_AUTH Base64("user:password")."""
    settings = seller.settings
    if settings.webhook_auth_method == "BASIC_AUTH":
        return "Basic " + base64.b64encode(settings.webhook_secret.encode()).decode()
    digest = hmac.new(settings.webhook_secret.encode(), body, hashlib.sha256).digest()
    if settings.webhook_signature_encoding == "base64":
        return base64.b64encode(digest).decode()
    return digest.hex()


def new_delivery(
    seller: Seller, event_type: str, payload: dict[str, Any], now: float, now_iso: str
) -> Delivery:
    """A signed delivery to the seller's current address (lock held); nothing sent yet.

    Every attempt of it carries the same ``source.eventId``, the key to deduplicate on.
    """
    event_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "source": {"eventType": event_type, "eventTime": now_iso, "eventId": event_id},
            "payload": payload,
        }
    ).encode()
    return Delivery(
        webhook_id=event_id,
        topic=event_type,
        url=seller.settings.webhook_url,
        headers={
            "Content-Type": "application/json",
            seller.settings.webhook_auth_header: auth_value(seller, body),
        },
        body=body,
        created_at=now,
    )


def line_json(line: OrderLine) -> dict[str, Any]:
    """§3.1: SKU in ``orderLines[].sku``, a quantity object [key names M]."""
    return {
        "lineNumber": line.line_number,
        "sku": line.sku,
        "productName": f"Product {line.sku}",
        "quantity": {"unitOfMeasure": "EACH", "measurementValue": str(line.quantity)},
    }


def order_payload(seller: Seller, order: Order, lines: list[OrderLine]) -> dict[str, Any]:
    return {
        "partnerId": seller.settings.client_id,
        "purchaseOrderId": order.purchase_order_id,
        "customerOrderId": order.customer_order_id,
        "orderDate": order.order_date_ms,
        "orderLines": [line_json(line) for line in lines],
    }


def order_event(
    seller: Seller, sub_event: str, payload: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The event type and payload for an order event, in the seller's configured style:
    PO_CREATED / PO_LINE_AUTOCANCELLED, or ORDER_UPDATES with ``subEventType`` (§3.1)."""
    if seller.settings.order_events == "ORDER_UPDATES":
        return "ORDER_UPDATES", {"subEventType": sub_event, **payload}
    return sub_event, payload
