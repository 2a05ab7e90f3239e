"""Walmart webhooks: auth, envelope and payloads (CHANNEL_APIS.md §3.1).

Pure functions over bytes and headers, so they are tested without a channel or a database;
``WalmartConnector`` delegates to them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from channels.connectors.payloads import load_json
from channels.connectors.types import (
    MessageKind,
    MessageLine,
    PulledNotification,
    WebhookEnvelope,
    WebhookMessage,
    WebhookParseError,
)
from inventory.models import MAX_QUANTITY

HMAC = "HMAC"
BASIC_AUTH = "BASIC_AUTH"
# §3.1: the header is the subscription's ``authHeaderName``, chosen by the seller.
DEFAULT_AUTH_HEADER = "X-Walmart-Signature"
MAX_IDENTIFIER_LENGTH = 255

PO_CREATED = "PO_CREATED"
PO_LINE_AUTOCANCELLED = "PO_LINE_AUTOCANCELLED"
ORDER_UPDATES = "ORDER_UPDATES"
INVENTORY_OOS = "INVENTORY_OOS"
# §3.1: ORDER_UPDATES carries one of these in payload.subEventType. A fraud cancellation
# releases the units as an auto-cancellation does; an intent to cancel is the buyer's
# request, which moves no stock until the order is cancelled.
CANCELLING_SUB_EVENTS = frozenset({PO_LINE_AUTOCANCELLED, "FRAUD_CANCEL"})


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (Django's ``request.headers`` or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for key, v in headers.items() if key.lower() == wanted), None)


def verify_walmart_webhook(
    *, secret: str, headers: Mapping[str, str], body: bytes, method: str, header: str
) -> bool:
    """True when the auth header holds what the subscription's ``authMethod`` puts there,
    compared in constant time (§3.1).

    HMAC: HMAC-SHA256 of the raw body keyed with the secret, hex or base64 (the docs do not
    say which, §7.3). BASIC_AUTH: ``Basic`` Base64 of the secret, "user:password". An empty
    secret verifies nothing.
    """
    if not secret:
        return False
    received = (header_value(headers, header) or "").strip()
    if not received:
        return False
    try:
        received_bytes = received.encode("ascii")
    except UnicodeEncodeError:
        return False
    if method == BASIC_AUTH:
        expected = b"Basic " + base64.b64encode(secret.encode())
        return hmac.compare_digest(expected, received_bytes)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    matches_hex = hmac.compare_digest(digest.hex().encode(), received_bytes.lower())
    matches_base64 = hmac.compare_digest(base64.b64encode(digest), received_bytes)
    return matches_hex or matches_base64


def walmart_webhook_envelope(body: bytes) -> WebhookEnvelope:
    """``source.eventType`` and ``source.eventId`` (§3.1: the key to deduplicate on);
    ``WebhookParseError`` if either is missing."""
    source = _object(_json_object(body).get("source"), where="source")
    topic = source.get("eventType")
    event_id = source.get("eventId")
    if not isinstance(topic, str) or not topic.strip():
        raise WebhookParseError("source.eventType is missing.")
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or not str(event_id):
        raise WebhookParseError("source.eventId is missing.")
    if len(topic) > 128 or len(str(event_id)) > 255:
        raise WebhookParseError("source.eventType or source.eventId is too long.")
    return WebhookEnvelope(topic=topic.strip(), dedupe_key=str(event_id).strip())


def topic_contradiction(topic: str, body: bytes) -> str:
    """Why the payload is not what ``source.eventType`` says ("" when it is, or when it
    cannot be read): signed with the body under HMAC, but not at all under BASIC_AUTH,
    where only a password guards it. An order event names its purchase order and lines,
    ORDER_UPDATES its subEventType, INVENTORY_OOS an item and no order."""
    if topic not in (PO_CREATED, PO_LINE_AUTOCANCELLED, ORDER_UPDATES, INVENTORY_OOS):
        return ""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, dict):
        return ""
    if topic == INVENTORY_OOS:
        if "purchaseOrderId" in payload or "orderLines" in payload:
            return "INVENTORY_OOS carrying an order: the event type contradicts the payload."
        return ""
    if topic == ORDER_UPDATES and not payload.get("subEventType"):
        return "ORDER_UPDATES without subEventType: the event type contradicts the payload."
    if not payload.get("purchaseOrderId") or "orderLines" not in payload:
        return (
            f"{topic} without purchaseOrderId or orderLines: "
            "the event type contradicts the payload."
        )
    return ""


def parse_walmart_webhook(topic: str, body: bytes) -> WebhookMessage:
    """Turn a verified body into a message; ``WebhookParseError`` says what is wrong.

    A topic nothing acts on is IGNORED without reading its body.
    """
    if topic not in (PO_CREATED, PO_LINE_AUTOCANCELLED, ORDER_UPDATES, INVENTORY_OOS):
        return WebhookMessage(kind=MessageKind.IGNORED, reference="")
    envelope = _json_object(body)
    payload = _object(envelope.get("payload"), where="payload")
    source = envelope.get("source")
    occurred_at = _timestamp(source.get("eventTime") if isinstance(source, dict) else None)
    if topic == INVENTORY_OOS:
        return _parse_out_of_stock(payload, occurred_at)
    event: object = topic
    if topic == ORDER_UPDATES:
        event = payload.get("subEventType")
        if not isinstance(event, str):
            raise WebhookParseError("payload.subEventType is missing.")
    if event == PO_CREATED:
        return _parse_order(payload, MessageKind.ORDER_PLACED, occurred_at)
    if event in CANCELLING_SUB_EVENTS:
        return _parse_order(payload, MessageKind.ORDER_CANCELLED, occurred_at)
    return WebhookMessage(kind=MessageKind.IGNORED, reference="")


def _parse_order(
    payload: Mapping[str, Any], kind: MessageKind, occurred_at: dt.datetime | None
) -> WebhookMessage:
    order_id = _id(payload, "purchaseOrderId", where="payload")
    where_order = f"purchase order {order_id}"
    items = payload.get("orderLines")
    if not isinstance(items, list):
        raise WebhookParseError(f"{where_order}: orderLines must be a list.")
    lines = []
    for index, item in enumerate(items):
        where = f"{where_order} orderLines[{index}]"
        item = _object(item, where=where)
        lines.append(
            MessageLine(
                reference=_id(item, "lineNumber", where=where),
                quantity=_line_quantity(item, where=where),
                **_sku(item),
            )
        )
    references = [line.reference for line in lines]
    if len(set(references)) != len(references):
        raise WebhookParseError(f"{where_order}: two lines share one lineNumber.")
    return WebhookMessage(
        kind=kind, reference=order_id, lines=tuple(lines), occurred_at=occurred_at
    )


def _parse_out_of_stock(
    payload: Mapping[str, Any], occurred_at: dt.datetime | None
) -> WebhookMessage:
    """INVENTORY_OOS: the item shows 0 on Walmart, a level to compare with what it should
    hold (drift when it should hold more)."""
    sku = _id(payload, "sku", where="payload")
    return WebhookMessage(
        kind=MessageKind.INVENTORY_CHANGED,
        reference=sku,
        lines=(MessageLine(reference=sku, quantity=0, identifiers={"sku": sku}),),
        occurred_at=occurred_at,
    )


def _sku(item: Mapping[str, Any]) -> dict[str, Any]:
    """The line's SKU, and why the line cannot be used ("" when it can): a bad SKU spoils
    its line, not the order."""
    value = item.get("sku")
    if value is None and isinstance(item.get("item"), dict):
        value = item["item"].get("sku")  # the Orders API's shape
    if value is None or value == "":
        return {"identifiers": {}, "problem": "the line has no sku"}
    if isinstance(value, bool) or not isinstance(value, str | int):
        return {"identifiers": {}, "problem": f"sku must be a string, got {_type_name(value)}"}
    text = str(value)
    problems = []
    if "\x00" in text:
        problems.append("sku contains a NUL byte, which cannot be stored")
        text = text.replace("\x00", "\ufffd")
    if len(text) > MAX_IDENTIFIER_LENGTH:
        problems.append(f"sku is longer than {MAX_IDENTIFIER_LENGTH} characters")
        text = text[:MAX_IDENTIFIER_LENGTH]
    return {"identifiers": {"sku": text}, "problem": "; ".join(problems)}


def _line_quantity(item: Mapping[str, Any], *, where: str) -> int:
    """§3.1: ``quantity.measurementValue`` (a string in Walmart's samples); the Orders API
    writes ``orderLineQuantity.amount`` [key names M]."""
    quantity = item.get("quantity")
    if quantity is None:
        quantity = item.get("orderLineQuantity")
    if not isinstance(quantity, dict):
        raise WebhookParseError(f"{where}: quantity must be an object.")
    value = quantity.get("measurementValue", quantity.get("amount"))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WebhookParseError(f"{where}: quantity must be a whole number.")
    if value < 0 or value > MAX_QUANTITY:
        raise WebhookParseError(f"{where}: quantity {value} is out of range.")
    return value


def _json_object(body: bytes) -> Mapping[str, Any]:
    return _object(load_json(body), where="body")


def _object(value: object, *, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(f"{where}: expected a JSON object, got {_type_name(value)}.")
    return value


def _id(payload: Mapping[str, Any], name: str, *, where: str) -> str:
    value = payload.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        raise WebhookParseError(f"{where}: {name} contains a NUL byte.")
    if isinstance(value, str) and value.strip() and len(value) <= 255:
        return value.strip()
    if value is None:
        raise WebhookParseError(f"{where}: {name} is missing.")
    raise WebhookParseError(f"{where}: {name} must be an id, got {_type_name(value)}.")


def _timestamp(value: object) -> dt.datetime | None:
    """When the event happened, if the body says so in a form that is a real time (a time
    past what the platform's clock can hold, or NaN, is no time)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def events_of_polled_order(order: Mapping[str, Any]) -> list[PulledNotification]:
    """The events an order read from ``GET /v3/orders`` stands for: its creation, and the
    cancellation of its cancelled lines. Shaped as the webhooks are, with stable dedupe
    keys; ingest's keys (purchase order and line numbers) make an order that also came by
    webhook commit once."""
    order_id = order.get("purchaseOrderId")
    raw_lines = order.get("orderLines")
    if isinstance(raw_lines, dict):
        raw_lines = raw_lines.get("orderLine")
    if order_id is None or not isinstance(raw_lines, list):
        return []
    lines = [line for line in raw_lines if isinstance(line, dict)]
    payload = {
        "purchaseOrderId": order_id,
        "customerOrderId": order.get("customerOrderId"),
        "orderDate": order.get("orderDate"),
        "orderLines": lines,
    }
    events = [_polled(PO_CREATED, f"po:{order_id}", payload)]
    cancelled = [line for line in lines if _line_status(line) == "Cancelled"]
    if cancelled:
        numbers = ",".join(str(line.get("lineNumber")) for line in cancelled)
        events.append(
            _polled(
                PO_LINE_AUTOCANCELLED,
                f"cancel:{order_id}:{numbers}",
                payload | {"orderLines": cancelled},
            )
        )
    return events


def _line_status(line: Mapping[str, Any]) -> str:
    statuses = line.get("orderLineStatuses")
    if isinstance(statuses, dict):
        statuses = statuses.get("orderLineStatus")
    if not isinstance(statuses, list) or not statuses:
        return ""
    last = statuses[-1]
    return str(last.get("status", "")) if isinstance(last, dict) else ""


def _polled(topic: str, key: str, payload: Mapping[str, Any]) -> PulledNotification:
    dedupe_key = f"poll:{key}"
    body = {"source": {"eventType": topic, "eventId": dedupe_key}, "payload": payload}
    return PulledNotification(
        topic=topic, dedupe_key=dedupe_key, body=json.dumps(body).encode(), receipt_handle=""
    )
