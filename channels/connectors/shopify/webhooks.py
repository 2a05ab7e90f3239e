"""Shopify webhooks: signature, envelope and payloads (CHANNEL_APIS.md §1.1).

Pure functions over bytes and headers, so they are tested without a channel or a database;
``ShopifyConnector`` delegates to them.
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
    StockEffect,
    WebhookEnvelope,
    WebhookMessage,
    WebhookParseError,
)
from inventory.models import MAX_QUANTITY

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
# The delivery id: the key for spotting duplicates [CHANNEL_APIS.md §1.1, SH1/SH5].
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
MAX_IDENTIFIER_LENGTH = 255

# RefundLineItemRestockType [SH17]. "cancel" releases units never fulfilled, "return" puts
# fulfilled units back on hand; "legacy_restock" predates the split and is read as a return;
# "no_restock" (or none) moves no stock.
STOCK_EFFECT_OF_RESTOCK_TYPE = {
    "cancel": StockEffect.RELEASE,
    "return": StockEffect.RETURN,
    "legacy_restock": StockEffect.RETURN,
}


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (Django's ``request.headers`` or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def verify_shopify_webhook(*, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """True when the HMAC header is the base64 HMAC-SHA256 of the raw body, in constant time.

    An empty secret verifies nothing: anyone can sign with an empty key.
    """
    if not secret:
        return False
    received = header_value(headers, HMAC_HEADER)
    if not received:
        return False
    try:
        received_bytes = received.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, received_bytes)


def shopify_webhook_envelope(headers: Mapping[str, str]) -> WebhookEnvelope:
    """Topic and delivery id from the headers; ``WebhookParseError`` if either is missing."""
    topic = (header_value(headers, TOPIC_HEADER) or "").strip()
    dedupe_key = (header_value(headers, WEBHOOK_ID_HEADER) or "").strip()
    missing = [
        name
        for name, value in ((TOPIC_HEADER, topic), (WEBHOOK_ID_HEADER, dedupe_key))
        if not value
    ]
    if missing:
        raise WebhookParseError(f"Missing header(s): {', '.join(missing)}.")
    if len(topic) > 128 or len(dedupe_key) > 255:
        raise WebhookParseError("Topic or webhook id header is too long.")
    return WebhookEnvelope(topic=topic, dedupe_key=dedupe_key)


def parse_shopify_webhook(topic: str, body: bytes) -> WebhookMessage:
    """Turn a verified body into a message; ``WebhookParseError`` says what is wrong with it.

    A topic nothing acts on is IGNORED without reading its body.
    """
    parse = _PARSERS.get(topic)
    if parse is None:
        return WebhookMessage(kind=MessageKind.IGNORED, reference="")
    return parse(_json_object(body))


def acts_on_topic(topic: str) -> bool:
    """Whether the topic is one whose body changes stock or what is expected on the shop."""
    return topic in _PARSERS


def topic_contradiction(topic: str, body: bytes) -> str:
    """Why the body is not what ``X-Shopify-Topic`` says ("" when it is, or when the body
    cannot be read: ingest quarantines that with its reason).

    The HMAC covers the body only (§1.1): the topic header can be changed by whoever holds a
    captured delivery. Each topic acted on has fields its body always carries: an order has
    ``id`` and ``line_items``, a cancelled one its ``cancelled_at``, a freshly created one
    none; a refund its own ``id``, ``order_id`` and ``refund_line_items``; an inventory level
    its ``inventory_item_id`` and ``available``.
    """
    required = _REQUIRED_FIELDS.get(topic)
    if required is None:
        return ""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    if not isinstance(payload, dict):
        return ""
    missing = [name for name in required if payload.get(name) in (None, "")]
    if topic == "inventory_levels/update" and "available" not in payload:
        missing.append("available")  # null for an untracked item, but never absent
    if missing:
        return f"{topic} without {', '.join(missing)}: the topic contradicts the body."
    if topic == "orders/create" and payload.get("cancelled_at"):
        return "orders/create of an order already cancelled: the topic contradicts the body."
    present = [name for name in _FIELDS_OF_OTHER_TOPICS.get(topic, ()) if name in payload]
    if present:
        return f"{topic} carrying {', '.join(present)}: the topic contradicts the body."
    return ""


# The fields a body of each topic always has (REST Order, Refund and InventoryLevel).
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "orders/create": ("id", "line_items"),
    "orders/cancelled": ("id", "line_items", "cancelled_at"),
    "refunds/create": ("id", "order_id", "refund_line_items"),
    "inventory_levels/update": ("inventory_item_id",),
}
# Fields that belong to another topic's body: an order carries no order_id, a refund no
# line_items of its own, an inventory level neither.
_FIELDS_OF_OTHER_TOPICS: dict[str, tuple[str, ...]] = {
    "orders/create": ("order_id", "refund_line_items", "inventory_item_id"),
    "orders/cancelled": ("order_id", "refund_line_items", "inventory_item_id"),
    "refunds/create": ("line_items", "inventory_item_id"),
    "inventory_levels/update": ("line_items", "refund_line_items", "order_id"),
}


def _parse_order(payload: Mapping[str, Any], kind: MessageKind) -> WebhookMessage:
    order_id = _id(payload, "id", where="order")
    items = _list(payload, "line_items", where=f"order {order_id}")
    lines = []
    for index, item in enumerate(items):
        where = f"order {order_id} line_items[{index}]"
        item = _object(item, where=where)
        identifiers, problem = _line_identifiers(item, ("variant_id", "sku", "product_id"))
        lines.append(
            MessageLine(
                reference=_id(item, "id", where=where),
                quantity=_quantity(item, "quantity", where=where),
                identifiers=identifiers,
                problem=problem,
            )
        )
    _unique_references(lines, where=f"order {order_id}")
    timestamp_field = "cancelled_at" if kind == MessageKind.ORDER_CANCELLED else "created_at"
    return WebhookMessage(
        kind=kind,
        reference=order_id,
        lines=tuple(lines),
        occurred_at=_timestamp(payload.get(timestamp_field) or payload.get("updated_at")),
    )


def _parse_order_created(payload: Mapping[str, Any]) -> WebhookMessage:
    return _parse_order(payload, MessageKind.ORDER_PLACED)


def _parse_order_cancelled(payload: Mapping[str, Any]) -> WebhookMessage:
    # The topic header is not signed, the body is: an order body resent as orders/cancelled
    # must not release a real order's units. A cancelled order carries its cancelled_at.
    if not payload.get("cancelled_at"):
        raise WebhookParseError(
            "orders/cancelled: the order has no cancelled_at; the topic contradicts the body."
        )
    return _parse_order(payload, MessageKind.ORDER_CANCELLED)


def _parse_refund(payload: Mapping[str, Any]) -> WebhookMessage:
    refund_id = _id(payload, "id", where="refund")
    where_refund = f"refund {refund_id}"
    order_id = _id(payload, "order_id", where=where_refund)
    items = _list(payload, "refund_line_items", where=where_refund)
    lines = []
    for index, item in enumerate(items):
        where = f"{where_refund} refund_line_items[{index}]"
        item = _object(item, where=where)
        line_item = item.get("line_item")
        if line_item is None:
            line_item = {}
        line_item = _object(line_item, where=f"{where}.line_item")
        if item.get("line_item_id") is not None:
            line_reference = _id(item, "line_item_id", where=where)
        else:
            line_reference = _id(line_item, "id", where=f"{where}.line_item")
        restock_type = item.get("restock_type")
        if restock_type is not None and not isinstance(restock_type, str):
            raise WebhookParseError(f"{where}: restock_type must be a string.")
        identifiers, problem = _line_identifiers(line_item, ("variant_id", "sku"))
        lines.append(
            MessageLine(
                reference=line_reference,
                quantity=_quantity(item, "quantity", where=where),
                identifiers=identifiers,
                problem=problem,
                stock_effect=STOCK_EFFECT_OF_RESTOCK_TYPE.get(
                    restock_type or "", StockEffect.NONE
                ),
            )
        )
    return WebhookMessage(
        kind=MessageKind.REFUND,
        reference=order_id,
        sub_reference=refund_id,
        lines=_merge_refund_lines(lines, where=where_refund),
        occurred_at=_timestamp(payload.get("created_at")),
    )


def _parse_inventory_level(payload: Mapping[str, Any]) -> WebhookMessage:
    item_id = _id(payload, "inventory_item_id", where="inventory level")
    where = f"inventory level of item {item_id}"
    available = payload.get("available")
    if available is None:
        # Shopify sends null for an item it does not track: no figure to compare.
        return WebhookMessage(kind=MessageKind.IGNORED, reference=item_id)
    if isinstance(available, bool) or not isinstance(available, int):
        raise WebhookParseError(f"{where}: available must be a whole number.")
    if abs(available) > MAX_QUANTITY:
        raise WebhookParseError(f"{where}: available {available} is beyond {MAX_QUANTITY}.")
    identifiers = {"inventory_item_id": item_id}
    if payload.get("location_id") is not None:
        identifiers["location_id"] = _id(payload, "location_id", where=where)
    return WebhookMessage(
        kind=MessageKind.INVENTORY_CHANGED,
        reference=item_id,
        # An inventory level, unlike an order line, may be negative (oversold on Shopify).
        lines=(MessageLine(reference=item_id, quantity=available, identifiers=identifiers),),
        occurred_at=_timestamp(payload.get("updated_at")),
    )


_PARSERS = {
    "orders/create": _parse_order_created,
    "orders/cancelled": _parse_order_cancelled,
    "refunds/create": _parse_refund,
    "inventory_levels/update": _parse_inventory_level,
}


def _json_object(body: bytes) -> Mapping[str, Any]:
    return _object(load_json(body), where="body")


def _object(value: object, *, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(f"{where}: expected a JSON object, got {_type_name(value)}.")
    return value


def _list(payload: Mapping[str, Any], name: str, *, where: str) -> list[Any]:
    value = payload.get(name)
    if not isinstance(value, list):
        raise WebhookParseError(f"{where}: {name} must be a list, got {_type_name(value)}.")
    return value


def _id(payload: Mapping[str, Any], name: str, *, where: str) -> str:
    value = payload.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise WebhookParseError(f"{where}: {name} must be positive, got {value}.")
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        raise WebhookParseError(f"{where}: {name} contains a NUL byte.")
    if isinstance(value, str) and value.strip() and len(value) <= 255:
        return value.strip()
    if value is None:
        raise WebhookParseError(f"{where}: {name} is missing.")
    raise WebhookParseError(f"{where}: {name} must be an id, got {_type_name(value)}.")


def _quantity(payload: Mapping[str, Any], name: str, *, where: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WebhookParseError(
            f"{where}: {name} must be a whole number, got {_type_name(value)}."
        )
    if value < 0:
        raise WebhookParseError(f"{where}: {name} must not be negative, got {value}.")
    if value > MAX_QUANTITY:
        # The ledger stores quantities as PostgreSQL integers; no real order comes near.
        raise WebhookParseError(f"{where}: {name} {value} is beyond {MAX_QUANTITY}.")
    return value


def _line_identifiers(
    payload: Mapping[str, Any], names: tuple[str, ...]
) -> tuple[dict[str, str], str]:
    """The line's identifiers, and why the line cannot be used ("" when it can).

    A bad identifier spoils its line, not the order: the other lines still commit. Text
    PostgreSQL cannot store (a NUL byte) is kept with the NUL shown as U+FFFD, for the
    operator to see.
    """
    identifiers = {}
    problems = []
    for name in names:
        value = payload.get(name)
        # A custom line item has no variant, and a variant may have no SKU: absent, not bad.
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            problems.append(f"{name} must be a string or a number, got {_type_name(value)}")
            continue
        text = str(value)
        if "\x00" in text:
            problems.append(f"{name} contains a NUL byte, which cannot be stored")
            text = text.replace("\x00", "\ufffd")
        if len(text) > MAX_IDENTIFIER_LENGTH:
            problems.append(f"{name} is longer than {MAX_IDENTIFIER_LENGTH} characters")
            text = text[:MAX_IDENTIFIER_LENGTH]
        identifiers[name] = text
    return identifiers, "; ".join(problems)


def _unique_references(lines: list[MessageLine], *, where: str) -> None:
    references = [line.reference for line in lines]
    if len(set(references)) != len(references):
        raise WebhookParseError(f"{where}: two lines share one line item id.")


def _merge_refund_lines(lines: list[MessageLine], *, where: str) -> tuple[MessageLine, ...]:
    # One line item refunded in two parts (say, from two locations) is one line to us: the
    # line item id is part of the ledger's idempotency key.
    merged: dict[str, MessageLine] = {}
    for line in lines:
        earlier = merged.get(line.reference)
        if earlier is None:
            merged[line.reference] = line
            continue
        if earlier.stock_effect != line.stock_effect:
            raise WebhookParseError(
                f"{where}: line item {line.reference} is refunded with two restock types."
            )
        merged[line.reference] = MessageLine(
            reference=line.reference,
            quantity=earlier.quantity + line.quantity,
            identifiers=earlier.identifiers,
            stock_effect=earlier.stock_effect,
        )
    return tuple(merged.values())


def _timestamp(value: object) -> dt.datetime | None:
    # Shown to people, and tells ingest an inventory level older than our last write; a bad
    # one is not worth a quarantine (without it a level is compared as if new).
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__


def events_of_polled_order(order: Mapping[str, Any]) -> list[PulledNotification]:
    """The events an order read from the REST orders list stands for: its creation, its
    cancellation if cancelled, each of its refunds. Their dedupe keys are stable, so the
    same order polled twice is stored once; ingest's keys (order and line ids) make an
    order that also came by webhook commit once."""
    order_id = order.get("id")
    if order_id is None:
        return []
    events = [_polled("orders/create", f"order:{order_id}", order)]
    if order.get("cancelled_at"):
        events.append(_polled("orders/cancelled", f"cancel:{order_id}", order))
    for refund in order.get("refunds") or []:
        if isinstance(refund, dict) and refund.get("id") is not None:
            events.append(_polled("refunds/create", f"refund:{refund['id']}", refund))
    return events


def _polled(topic: str, key: str, payload: Mapping[str, Any]) -> PulledNotification:
    return PulledNotification(
        topic=topic, dedupe_key=f"poll:{key}", body=json.dumps(payload).encode(), receipt_handle=""
    )
