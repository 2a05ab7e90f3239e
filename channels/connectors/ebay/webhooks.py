"""eBay's Platform Notifications (Trading API, SOAP): signature, envelope, payloads.

Pure functions over bytes and headers (CHANNEL_APIS.md §5.1), so they are tested without a
channel or a database; ``EbayConnector`` delegates to them. Polled orders
(``GET /sell/fulfillment/v1/order``) are turned into events of the same topic, with a JSON
body this module also reads.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from typing import Any
from xml.parsers import expat

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

# §5.1 (EB6): the order events; each carries the transaction it is about.
ORDER_TOPICS = frozenset({"FixedPriceTransaction", "AuctionCheckoutComplete", "ItemSold"})
FIXED_PRICE_TRANSACTION = "FixedPriceTransaction"

MAX_IDENTIFIER_LENGTH = 255
# A document type can declare entities that expand a small body into gigabytes (the
# "billion laughs"); eBay's notifications carry none, so any is refused before parsing.
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_xml(body: bytes) -> ElementTree.Element:
    """The document's root; ``WebhookParseError`` for a body that is not XML or declares a
    document type (entity expansion is never attempted)."""
    if _DTD.search(body):
        raise WebhookParseError("The body declares a document type or entities: refused.")
    # Also in any other encoding (UTF-16 hides the bytes searched above): a first pass with
    # expat alone stops at a document type declaration, before any entity is read.
    scanner = expat.ParserCreate()
    scanner.StartDoctypeDeclHandler = _refuse_document_type
    scanner.EntityDeclHandler = _refuse_document_type
    try:
        scanner.Parse(body, True)
        # Safe: the document declares no entity, so none is expanded or fetched.
        return ElementTree.fromstring(body)  # noqa: S314
    except (ElementTree.ParseError, expat.ExpatError) as error:
        raise WebhookParseError(f"Body is not valid XML: {error}.") from None
    except _DocumentTypeRefused:
        raise WebhookParseError(
            "The body declares a document type or entities: refused."
        ) from None


class _DocumentTypeRefused(Exception):
    pass


def _refuse_document_type(*args: object) -> None:
    raise _DocumentTypeRefused


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(root: ElementTree.Element, *path: str) -> ElementTree.Element | None:
    """The first element down ``path`` by local names, at any depth for the first step."""
    candidates = [e for e in root.iter() if _local(e.tag) == path[0]]
    for element in candidates:
        found: ElementTree.Element | None = element
        for name in path[1:]:
            found = next((c for c in found if _local(c.tag) == name), None) if found else None
        if found is not None:
            return found
    return None


def _text(root: ElementTree.Element, *path: str) -> str:
    element = _find(root, *path)
    return (element.text or "").strip() if element is not None else ""


def signature(timestamp: str, *, dev_id: str, app_id: str, cert_id: str) -> str:
    """§5.1 (EB6 KB 1201): ``base64(md5(Timestamp + DevID + AppID + CertID))``."""
    # The platform chose MD5; nothing else verifies.
    digest = hashlib.md5((timestamp + dev_id + app_id + cert_id).encode()).digest()  # noqa: S324
    return base64.b64encode(digest).decode()


def verify_platform_notification(*, body: bytes, dev_id: str, app_id: str, cert_id: str) -> bool:
    """True when the SOAP header's ``NotificationSignature`` is the one these keys give for
    the body's ``Timestamp``, compared in constant time. Any key empty verifies nothing;
    a body that is not safe XML verifies nothing."""
    if not (dev_id and app_id and cert_id):
        return False
    try:
        root = parse_xml(body)
    except WebhookParseError:
        return False
    received = _text(root, "NotificationSignature")
    timestamp = _text(root, "Timestamp")
    if not received or not timestamp:
        return False
    expected = signature(timestamp, dev_id=dev_id, app_id=app_id, cert_id=cert_id)
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", errors="replace"))


def signed_timestamp(body: bytes) -> float | None:
    """The SOAP body's ``Timestamp``, which is all the signature covers (§5.1), in unix
    seconds; None when it is missing or not a time."""
    try:
        text = _text(parse_xml(body), "Timestamp")
    except WebhookParseError:
        return None
    stamp = _timestamp(text)
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def topic_contradiction(topic: str, body: bytes) -> str:
    """Why the body is not what its ``NotificationEventName`` says ("" when it is, or when
    it cannot be read): the signature covers the Timestamp only, not the event name, so an
    order event must carry the transaction it announces."""
    if topic not in ORDER_TOPICS or body.lstrip().startswith(b"{"):
        return ""
    try:
        root = parse_xml(body)
    except WebhookParseError:
        return ""
    if not any(_local(element.tag) == "Transaction" for element in root.iter()):
        return f"{topic} without a Transaction: the event name contradicts the body."
    return ""


def platform_notification_envelope(body: bytes) -> WebhookEnvelope:
    """``NotificationEventName`` and, to deduplicate on, the transaction ids (§5.1:
    ``ItemID`` and ``TransactionID``; the event name and timestamp for other events)."""
    if body.lstrip().startswith(b"{"):
        payload = _json_object(body)
        return WebhookEnvelope(
            topic=str(payload.get("topic") or ""), dedupe_key=str(payload.get("dedupe_key"))
        )
    root = parse_xml(body)
    topic = _text(root, "NotificationEventName")
    if not topic or len(topic) > 128:
        raise WebhookParseError("NotificationEventName is missing.")
    item_id = _text(root, "Item", "ItemID")
    transaction_id = _text(root, "Transaction", "TransactionID")
    if item_id and transaction_id:
        key = f"{topic}:{item_id}-{transaction_id}"
    else:
        key = f"{topic}:{_text(root, 'Timestamp')}:{_text(root, 'CorrelationID')}"
    if len(key) > 255:
        raise WebhookParseError("The transaction ids are too long.")
    return WebhookEnvelope(topic=topic, dedupe_key=key)


def parse_platform_notification(topic: str, body: bytes) -> WebhookMessage:
    """An order event as ORDER_PLACED, one line per transaction; other topics IGNORED.

    The ledger's reference of a line sold is its ``OrderLineItemID`` (``ItemID-
    TransactionID``): each transaction is announced by its own notification, and the
    Fulfillment API's ``lineItemId`` names the same, so a polled order commits once.
    """
    if topic not in ORDER_TOPICS:
        return WebhookMessage(kind=MessageKind.IGNORED, reference="")
    if body.lstrip().startswith(b"{"):
        return _parse_polled(_json_object(body))
    root = parse_xml(body)
    item_id = _text(root, "Item", "ItemID")
    item_sku = _text(root, "Item", "SKU")
    transactions = [e for e in root.iter() if _local(e.tag) == "Transaction"]
    if not transactions:
        raise WebhookParseError(f"{topic}: no Transaction.")
    lines = []
    for transaction in transactions:
        transaction_id = _text(transaction, "TransactionID")
        reference = _text(transaction, "OrderLineItemID") or f"{item_id}-{transaction_id}"
        sku = _text(transaction, "Variation", "SKU") or item_sku
        lines.append(
            MessageLine(
                reference=_bounded(reference, "OrderLineItemID"),
                quantity=_quantity(_text(transaction, "QuantityPurchased")),
                **_identifiers(sku, item_id),
            )
        )
    reference = (
        lines[0].reference
        if len(lines) == 1
        else _bounded(_text(root, "ContainingOrder", "OrderID"), "OrderID")
    )
    return WebhookMessage(
        kind=MessageKind.ORDER_PLACED,
        reference=reference,
        lines=tuple(lines),
        occurred_at=_timestamp(_text(root, "Timestamp")),
    )


def events_of_polled_order(order: Mapping[str, Any]) -> list[PulledNotification]:
    """One event per line of an order read from the Fulfillment API, keyed as the
    notification of its transaction is parsed (its ``lineItemId``)."""
    events = []
    for line in order.get("lineItems") or []:
        if not isinstance(line, dict) or not line.get("lineItemId"):
            continue
        dedupe_key = f"poll:{line['lineItemId']}"
        body = {
            "topic": FIXED_PRICE_TRANSACTION,
            "dedupe_key": dedupe_key,
            "orderId": order.get("orderId"),
            "creationDate": order.get("creationDate"),
            "lineItem": line,
        }
        events.append(
            PulledNotification(
                topic=FIXED_PRICE_TRANSACTION,
                dedupe_key=dedupe_key,
                body=json.dumps(body).encode(),
                receipt_handle="",
            )
        )
    return events


def _parse_polled(payload: Mapping[str, Any]) -> WebhookMessage:
    line = payload.get("lineItem")
    if not isinstance(line, dict):
        raise WebhookParseError("lineItem must be an object.")
    reference = _bounded(str(line.get("lineItemId") or ""), "lineItemId")
    return WebhookMessage(
        kind=MessageKind.ORDER_PLACED,
        reference=reference,
        lines=(
            MessageLine(
                reference=reference,
                quantity=_quantity(str(line.get("quantity", ""))),
                **_identifiers(str(line.get("sku") or ""), str(line.get("legacyItemId") or "")),
            ),
        ),
        occurred_at=_timestamp(str(payload.get("creationDate") or "")),
    )


def _identifiers(sku: str, item_id: str) -> dict[str, Any]:
    """The line's SKU and eBay item id, and why the line cannot be used ("" when it can)."""
    identifiers = {}
    if item_id and len(item_id) <= MAX_IDENTIFIER_LENGTH:
        identifiers["item_id"] = item_id
    if not sku:
        return {"identifiers": identifiers, "problem": "the line has no SKU"}
    if len(sku) > MAX_IDENTIFIER_LENGTH or "\x00" in sku:
        return {"identifiers": identifiers, "problem": "the SKU cannot be stored"}
    return {"identifiers": {**identifiers, "sku": sku}, "problem": ""}


def _bounded(value: str, name: str) -> str:
    if not value:
        raise WebhookParseError(f"{name} is missing.")
    if len(value) > MAX_IDENTIFIER_LENGTH or "\x00" in value:
        raise WebhookParseError(f"{name} is not an id.")
    return value


def _quantity(text: str) -> int:
    if not text.strip().isdigit():
        raise WebhookParseError(f"QuantityPurchased {text!r} is not a whole number.")
    value = int(text)
    if value > MAX_QUANTITY:
        raise WebhookParseError(f"QuantityPurchased {value} is out of range.")
    return value


def _timestamp(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _json_object(body: bytes) -> Mapping[str, Any]:
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise WebhookParseError("Body is not a JSON object.")
    return payload
