"""TikTok Shop's webhooks (``CHANNEL_APIS.md`` §4.1): pure functions over bytes and headers.

The envelope is ``{type, tts_notification_id, shop_id, timestamp, data}``; the signature
is the whole ``Authorization`` header, hex HMAC-SHA256(app_secret, app_key + body). An
order event (type 1) names the order and its status only: its lines come from Get Order
Detail (``Capability.ORDER_LOOKUP``), or from the order itself when it was polled.

A cancellation event (type 11: some line items of an order, or a request to cancel them)
and a return event (type 12) name the cancellation or return and its status only: their
line items come from Search Cancellations / Search Returns (202309 return_refund), and
each is a refund whose lines say what they do to stock (``StockEffect``):

- a cancellation granted (``CANCELLATION_REQUEST_SUCCESS`` / ``_COMPLETE``) releases the
  committed units of its line items; pending or withdrawn, nothing moves;
- a return completed (``RETURN_OR_REFUND_REQUEST_COMPLETE``) of type ``RETURN_AND_REFUND``
  puts the units back into sellable stock; money only (``REFUND``, ``REFUND_ONLY``), a
  replacement, or any other status, nothing moves.

The refund's reference is ``cancel:<cancel_id>`` or ``return:<return_id>`` and its lines'
are the SKU ids (as the order's): a cancellation announced at several statuses, delivered
twice, or also seen by the order poll, releases its units once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Mapping, Sequence
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

# §4.1 type codes [V TT6].
ORDER_STATUS_CHANGE = 1
SELLER_DEAUTHORIZATION = 6
UPCOMING_AUTHORIZATION_EXPIRATION = 7
CANCELLATION_STATUS_CHANGE = 11
RETURN_STATUS_CHANGE = 12
TYPE_NAMES = {
    1: "ORDER_STATUS_CHANGE",
    2: "REVERSE_ORDER_STATUS_CHANGE",
    3: "RECIPIENT_ADDRESS_UPDATE",
    4: "PACKAGE_UPDATE",
    5: "PRODUCT_STATUS_CHANGE",
    6: "SELLER_DEAUTHORIZATION",
    7: "UPCOMING_AUTHORIZATION_EXPIRATION",
    11: "CANCELLATION_STATUS_CHANGE",
    12: "RETURN_STATUS_CHANGE",
}
ORDER_PLACED_TOPIC = "ORDER_STATUS_CHANGE"
# An order event about a cancelled order has a topic of its own: a polled cancellation is
# then never taken for the order placed again (``Connector.order_placed_topic``).
ORDER_CANCELLED_TOPIC = "ORDER_STATUS_CHANGE/CANCELLED"
AUTHORIZATION_TOPICS = frozenset(
    {TYPE_NAMES[SELLER_DEAUTHORIZATION], TYPE_NAMES[UPCOMING_AUTHORIZATION_EXPIRATION]}
)
CANCELLED = "CANCELLED"
# 202309 return_refund statuses ([V] third-party client types; COMPLETE is listed there too).
RELEASING_CANCEL_STATUSES = frozenset(
    {"CANCELLATION_REQUEST_SUCCESS", "CANCELLATION_REQUEST_COMPLETE"}
)
RETURN_COMPLETE = "RETURN_OR_REFUND_REQUEST_COMPLETE"
RETURN_AND_REFUND = "RETURN_AND_REFUND"
CANCEL_REFERENCE_PREFIX = "cancel:"
RETURN_REFERENCE_PREFIX = "return:"


def verify_tiktok_webhook(
    *, app_key: str, secret: str, headers: Mapping[str, str], body: bytes
) -> bool:
    """§4.1: ``Authorization`` is the lowercase hex HMAC-SHA256 of ``app_key + body`` keyed
    with the app secret (no ``Bearer``, no timestamp), compared in constant time. An empty
    secret or app key verifies nothing."""
    if not secret or not app_key:
        return False
    received = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    try:
        received_bytes = received.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = hmac.new(secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()
    return bool(received_bytes) and hmac.compare_digest(expected.encode(), received_bytes)


def tiktok_webhook_envelope(body: bytes) -> WebhookEnvelope:
    """The topic (the type's name; a cancelled order's its own) and ``tts_notification_id``,
    the dedupe key: no timestamp is signed, so a replay is caught only by it (§4.1)."""
    envelope = _json_object(body)
    notification_id = str(envelope.get("tts_notification_id") or "")
    if not notification_id:
        raise WebhookParseError("The notification has no tts_notification_id.")
    return WebhookEnvelope(topic=_topic(envelope), dedupe_key=notification_id)


def signed_timestamp(body: bytes) -> float | None:
    """The envelope's ``timestamp`` (unix seconds): inside the body, so under the signature
    (§4.1); None when the body has none that is a number."""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    value = envelope.get("timestamp") if isinstance(envelope, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def shop_contradiction(body: bytes, *, shop_id: str) -> str:
    """Why the event is not about this channel's shop ("" when it is, or when the channel
    does not name its shop): the app secret signs every shop's events alike, so an event of
    another shop (a withdrawn authorization, an order) verifies on any channel of the app."""
    if not shop_id:
        return ""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    named = envelope.get("shop_id") if isinstance(envelope, dict) else None
    if named is not None and str(named) != shop_id:
        return f"The event is about shop {named}, not this channel's shop {shop_id}."
    return ""


def _topic(envelope: Mapping[str, Any]) -> str:
    kind = envelope.get("type")
    name = TYPE_NAMES.get(kind, f"TYPE_{kind}") if isinstance(kind, int) else f"TYPE_{kind}"
    data = envelope.get("data")
    if (
        kind == ORDER_STATUS_CHANGE
        and isinstance(data, Mapping)
        and data.get("order_status") == CANCELLED
    ):
        return ORDER_CANCELLED_TOPIC
    return name


def parse_tiktok_webhook(topic: str, body: bytes) -> WebhookMessage:
    """Type 1: the order placed (any status that holds stock) or cancelled, its lines when
    the body carries them (a polled order), else none (ingest fetches them). Types 11 and
    12: a refund of the order named by its cancellation or return, its lines when the body
    carries them (polled), else none (ingest fetches them). Types 6 and 7: the
    authorization withdrawn or ending soon (an operator is told, and pushes are paused on
    6). Any other type is stored and not acted on."""
    envelope = _json_object(body)
    kind = envelope.get("type")
    if kind in (SELLER_DEAUTHORIZATION, UPCOMING_AUTHORIZATION_EXPIRATION):
        return WebhookMessage(
            kind=(
                MessageKind.AUTHORIZATION_REVOKED
                if kind == SELLER_DEAUTHORIZATION
                else MessageKind.AUTHORIZATION_EXPIRING
            ),
            reference=str(envelope.get("shop_id") or ""),
            occurred_at=_timestamp(envelope.get("timestamp")),
        )
    if kind == CANCELLATION_STATUS_CHANGE:
        return cancellation_message(_data_of(envelope))
    if kind == RETURN_STATUS_CHANGE:
        return return_message(_data_of(envelope))
    if kind != ORDER_STATUS_CHANGE:
        return WebhookMessage(kind=MessageKind.IGNORED, reference="")
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise WebhookParseError("The order event has no data object.")
    order_id = str(data.get("order_id") or "")
    if not order_id:
        raise WebhookParseError("The order event names no order_id.")
    status = str(data.get("order_status") or "")
    line_items = data.get("line_items")
    return WebhookMessage(
        kind=MessageKind.ORDER_CANCELLED if status == CANCELLED else MessageKind.ORDER_PLACED,
        reference=order_id,
        lines=order_lines(line_items) if isinstance(line_items, list) else (),
        occurred_at=_timestamp(data.get("update_time")),
    )


def parse_order(order: Mapping[str, Any]) -> WebhookMessage:
    """A Get Order Detail order (§4.1) as its message: placed or cancelled, with its lines."""
    order_id = str(order.get("id") or "")
    if not order_id:
        raise WebhookParseError("The order has no id.")
    status = str(order.get("status") or "")
    line_items = order.get("line_items")
    return WebhookMessage(
        kind=MessageKind.ORDER_CANCELLED if status == CANCELLED else MessageKind.ORDER_PLACED,
        reference=order_id,
        lines=order_lines(line_items if isinstance(line_items, list) else []),
        occurred_at=_timestamp(order.get("update_time")),
    )


def cancellation_message(cancellation: Mapping[str, Any]) -> WebhookMessage:
    """A type 11 event's data, or a Search Cancellations entry, as its refund: the line
    items (when given) release their units once the cancellation is granted."""
    cancel_id = str(cancellation.get("cancel_id") or "")
    if not cancel_id:
        raise WebhookParseError("The cancellation names no cancel_id.")
    granted = str(cancellation.get("cancel_status") or "") in RELEASING_CANCEL_STATUSES
    return _refund(
        cancellation,
        sub_reference=f"{CANCEL_REFERENCE_PREFIX}{cancel_id}",
        line_items=cancellation.get("cancel_line_items"),
        effect=StockEffect.RELEASE if granted else StockEffect.NONE,
    )


def return_message(return_order: Mapping[str, Any]) -> WebhookMessage:
    """A type 12 event's data, or a Search Returns entry, as its refund: the line items
    (when given) go back to sellable stock once a return of the goods is complete."""
    return_id = str(return_order.get("return_id") or "")
    if not return_id:
        raise WebhookParseError("The return names no return_id.")
    restocks = (
        str(return_order.get("return_status") or "") == RETURN_COMPLETE
        and str(return_order.get("return_type") or "") == RETURN_AND_REFUND
    )
    return _refund(
        return_order,
        sub_reference=f"{RETURN_REFERENCE_PREFIX}{return_id}",
        line_items=return_order.get("return_line_items"),
        effect=StockEffect.RETURN if restocks else StockEffect.NONE,
    )


def _refund(
    record: Mapping[str, Any], *, sub_reference: str, line_items: object, effect: StockEffect
) -> WebhookMessage:
    order_id = str(record.get("order_id") or "")
    if not order_id:
        raise WebhookParseError("The cancellation or return names no order_id.")
    return WebhookMessage(
        kind=MessageKind.REFUND,
        reference=order_id,
        sub_reference=sub_reference,
        lines=order_lines(line_items, stock_effect=effect) if isinstance(line_items, list) else (),
        occurred_at=_timestamp(record.get("update_time")),
    )


def _data_of(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise WebhookParseError("The event has no data object.")
    return data


def order_lines(
    line_items: Sequence[object], *, stock_effect: StockEffect = StockEffect.NONE
) -> tuple[MessageLine, ...]:
    """One line per SKU: in 202309 each line item stands for one unit (§4.1 [M]), so the
    units of a SKU are counted. The SKU id is the line's reference: stable across fetches
    of the order and across its cancellations and returns, so a commit and its release
    find each other.

    An order's line items a partial cancellation took off (``display_status`` CANCELLED)
    are counted too: the order committed them when it was placed, and the cancellation
    (type 11, or the poll's stand-in for it) is the one place that releases them."""
    counts: Counter[str] = Counter()
    seller_skus: dict[str, str] = {}
    for item in line_items:
        if not isinstance(item, Mapping):
            raise WebhookParseError("A line item is not an object.")
        sku_id = str(item.get("sku_id") or "")
        if not sku_id:
            raise WebhookParseError("A line item has no sku_id.")
        counts[sku_id] += 1
        seller_skus.setdefault(sku_id, str(item.get("seller_sku") or ""))
    return tuple(
        MessageLine(
            reference=sku_id,
            quantity=units,
            identifiers={"sku_id": sku_id, "seller_sku": seller_skus[sku_id]},
            stock_effect=stock_effect,
        )
        for sku_id, units in counts.items()
    )


def polled_order(order: Mapping[str, Any]) -> PulledNotification:
    """A searched order as the type 1 event that would have announced it, its lines in
    ``data.line_items`` so that ingest fetches nothing; one event per order and status."""
    order_id = str(order.get("id") or "")
    status = str(order.get("status") or "")
    envelope = {
        "type": ORDER_STATUS_CHANGE,
        "tts_notification_id": f"poll:{order_id}:{status}",
        "timestamp": order.get("update_time"),
        "data": {
            "order_id": order_id,
            "order_status": status,
            "update_time": order.get("update_time"),
            "line_items": order.get("line_items") or [],
        },
    }
    return PulledNotification(
        topic=_topic(envelope),
        dedupe_key=f"poll:{order_id}:{status}",
        body=json.dumps(envelope).encode(),
        receipt_handle="",
    )


def has_cancelled_line_items(order: Mapping[str, Any]) -> bool:
    """Whether an order still open shows line items a partial cancellation took off
    (``display_status`` CANCELLED, ``is_cancelled`` in the simulator [M])."""
    if str(order.get("status") or "") == CANCELLED:
        return False
    return any(
        isinstance(item, Mapping)
        and (item.get("display_status") == CANCELLED or item.get("is_cancelled") is True)
        for item in order.get("line_items") or []
    )


def polled_cancellation(cancellation: Mapping[str, Any]) -> PulledNotification:
    """A searched cancellation as the type 11 event that would have announced it, its line
    items in ``data`` so that ingest fetches nothing; one event per cancellation and
    status. Its refund is the webhook's (same cancel id, same lines): applied once."""
    cancel_id = str(cancellation.get("cancel_id") or "")
    status = str(cancellation.get("cancel_status") or "")
    dedupe_key = f"poll:cancel:{cancel_id}:{status}"
    envelope = {
        "type": CANCELLATION_STATUS_CHANGE,
        "tts_notification_id": dedupe_key,
        "timestamp": cancellation.get("update_time"),
        "data": dict(cancellation),
    }
    return PulledNotification(
        topic=_topic(envelope),
        dedupe_key=dedupe_key,
        body=json.dumps(envelope).encode(),
        receipt_handle="",
    )


def _json_object(body: bytes) -> Mapping[str, Any]:
    value = load_json(body)
    if not isinstance(value, dict):
        raise WebhookParseError("The body is not a JSON object.")
    return value


def _timestamp(value: object) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
