"""Every platform's webhook parser under hostile input (RELIABILITY.md §6.4 P2).

Bodies are malformed JSON or XML, valid payloads with values swapped for wrong types, huge
and negative numbers, NaN, deep nesting, truncation, invalid UTF-8 and unicode garbage.

- Read as ingest reads them (``ingest.read_message``): each is either a message within
  the limits the ledger can store, or a ``WebhookParseError`` (the receipt is
  quarantined), never another exception that would fail the receipt five times.
- Through the receiver, signed as the platform signs (the simulators' signers) and then
  ingested: never a 5xx, an unreadable body is stored quarantined, and stock moves only
  for a body the parser reads as a valid message of a mapped listing.

``WEBHOOK_FUZZ_EXAMPLES`` sets the cases per platform of the parser run (default 1,000;
the chaos tier runs 10,000); the receiver run takes a tenth of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from xml.sax.saxutils import escape

import pytest
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.connectors.amazon import notifications as amazon
from channels.connectors.ebay import webhooks as ebay
from channels.connectors.shopify import webhooks as shopify
from channels.connectors.tiktok import webhooks as tiktok
from channels.connectors.types import MessageKind, WebhookMessage, WebhookParseError
from channels.connectors.walmart import webhooks as walmart
from channels.models import Channel, WebhookReceipt
from channels.pipeline import ingest, receive
from channels.simulators.shopify.webhooks import signature as shopify_signature
from channels.simulators.tiktok.signing import webhook_signature as tiktok_signature
from inventory.models import MAX_QUANTITY, InventoryEvent, StockLevel
from tests import factories

EXAMPLES = int(os.environ.get("WEBHOOK_FUZZ_EXAMPLES", "1000"))
RECEIVER_EXAMPLES = max(10, EXAMPLES // 10)

# -----------------------------------------------------------------------------------------
# Valid payloads of each platform, the seeds of the mutations
# -----------------------------------------------------------------------------------------

SHOPIFY_ORDER = {
    "id": 1001,
    "created_at": "2026-01-10T12:00:00Z",
    "cancelled_at": "2026-01-10T13:00:00Z",
    "line_items": [{"id": 11, "variant_id": 123, "sku": "FUZZ-1", "quantity": 2}],
}
SHOPIFY_REFUND = {
    "id": 77,
    "order_id": 1001,
    "refund_line_items": [
        {"line_item_id": 11, "quantity": 1, "restock_type": "return", "line_item": {"id": 11}}
    ],
}
SHOPIFY_LEVEL = {"inventory_item_id": 30322695, "location_id": 124656943, "available": 7}
WALMART_ORDER = {
    "source": {"eventType": "PO_CREATED", "eventId": "evt-1", "eventTime": 1768046400000},
    "payload": {
        "purchaseOrderId": "1796277083022",
        "subEventType": "PO_CREATED",
        "orderLines": [
            {
                "lineNumber": "1",
                "sku": "FUZZ-1",
                "quantity": {"unitOfMeasure": "EACH", "measurementValue": "2"},
            }
        ],
    },
}
TIKTOK_ORDER = {
    "type": 1,
    "tts_notification_id": "ntf-1",
    "shop_id": "7494",
    "timestamp": 1768046400,
    "data": {
        "order_id": "576461413038785752",
        "order_status": "AWAITING_SHIPMENT",
        "update_time": 1768046400,
        "line_items": [{"sku_id": "1729", "seller_sku": "FUZZ-1"}],
    },
}
AMAZON_ORDER = {
    "NotificationType": "ORDER_CHANGE",
    "EventTime": "2026-01-10T12:00:00Z",
    "NotificationMetadata": {"NotificationId": "n-1"},
    "Payload": {
        "OrderChangeNotification": {
            "AmazonOrderId": "111-1",
            "OrderChangeTrigger": {"TimeOfOrderChange": "2026-01-10T12:00:00Z"},
            "Summary": {
                "OrderStatus": "Unshipped",
                "FulfillmentType": "MFN",
                "OrderItems": [{"OrderItemId": "1", "SellerSKU": "FUZZ-1", "Quantity": 2}],
            },
        }
    },
}
AMAZON_FBA = {
    "NotificationType": "FBA_INVENTORY_AVAILABILITY_CHANGES",
    "EventTime": "2026-01-10T12:00:00Z",
    "Payload": {
        "SKU": "FUZZ-1",
        "FulfillmentInventoryByMarketplace": [
            {
                "MarketplaceId": "ATVPDKIKX0DER",
                "FulfillmentInventory": {
                    "Fulfillable": 5,
                    "InboundQuantityBreakdown": {"Working": 1},
                    "ReservedQuantityBreakdown": {"Customer": 1},
                    "Researching": 0,
                    "Unfulfillable": 0,
                },
            }
        ],
    },
}
EBAY_FIELDS = {
    "Timestamp": "2026-01-10T12:00:00.000Z",
    "NotificationEventName": "FixedPriceTransaction",
    "ItemID": "1",
    "SKU": "FUZZ-1",
    "QuantityPurchased": "2",
    "TransactionID": "7",
}
EBAY_POLLED = {"topic": "FixedPriceTransaction", "orderId": "1-2", "lineItems": []}


def ebay_xml(fields: dict[str, str], signature: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Header><ebl:RequesterCredentials xmlns:ebl='urn:ebay:apis:eBLBaseComponents'>"
        f"<ebl:NotificationSignature>{signature}</ebl:NotificationSignature>"
        "</ebl:RequesterCredentials></soapenv:Header><soapenv:Body>"
        '<GetItemTransactionsResponse xmlns="urn:ebay:apis:eBLBaseComponents">'
        f"<Timestamp>{fields['Timestamp']}</Timestamp>"
        f"<NotificationEventName>{fields['NotificationEventName']}</NotificationEventName>"
        f"<Item><ItemID>{fields['ItemID']}</ItemID><SKU>{fields['SKU']}</SKU></Item>"
        "<TransactionArray><Transaction>"
        f"<QuantityPurchased>{fields['QuantityPurchased']}</QuantityPurchased>"
        f"<TransactionID>{fields['TransactionID']}</TransactionID>"
        "</Transaction></TransactionArray></GetItemTransactionsResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


# -----------------------------------------------------------------------------------------
# Hostile bodies
# -----------------------------------------------------------------------------------------

HUGE = 2**70
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.sampled_from([-1, 0, MAX_QUANTITY, MAX_QUANTITY + 1, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["", "\x00", "\ufffd", "\u202e", "\U0001d518\U0001d52b", "a" * 300, "1e400", "-5"]
    ),
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with parts replaced by other JSON, dropped, or added to."""
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return draw(json_values)
    if isinstance(value, dict):
        result = {
            key: draw(mutated(child))
            for key, child in value.items()
            if draw(st.integers(0, 9)) > 0  # one key in ten dropped
        }
        if roll == 1:
            result[draw(st.text(max_size=8))] = draw(json_values)
        return result
    if isinstance(value, list):
        items = [draw(mutated(item)) for item in value]
        return items + draw(st.lists(json_values, max_size=2)) if roll == 1 else items
    return draw(json_leaves) if roll <= 3 else value


def deeply_nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def hostile_json(sample: dict[str, Any]) -> st.SearchStrategy[bytes]:
    raw = json.dumps(sample).encode()
    return st.one_of(
        mutated(sample).map(lambda value: json.dumps(value).encode()),
        st.integers(0, len(raw) - 1).map(lambda cut: raw[:cut]),
        st.sampled_from([64, 65, 1_000, 100_000]).map(deeply_nested),
        st.sampled_from([1_000, 100_000]).map(lambda depth: b"[" * depth + b"]" * depth),
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e99999", b"-0"]).map(
            lambda token: raw.replace(b"2", token, 1)
        ),
        st.binary(max_size=200).map(lambda junk: raw + junk),
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.just(raw.replace(b'"', b"\xff", 1)),
    )


def hostile_xml(fields: dict[str, str]) -> st.SearchStrategy[bytes]:
    texts = st.one_of(st.text(max_size=40), json_leaves.map(str))
    replaced = st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), texts.map(escape), texts)
            for name, value in fields.items()
        }
    )
    return st.one_of(
        replaced.map(ebay_xml),
        st.sampled_from([1_000, 100_000]).map(lambda depth: b"<a>" * depth + b"</a>" * depth),
        st.just(
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><r>&lol2;</r>'
        ),
        st.binary(max_size=300),
    )


# -----------------------------------------------------------------------------------------
# Parsers, read as ingest reads them
# -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parser:
    name: str
    parse: Callable[[str, bytes], WebhookMessage]
    topics: tuple[str, ...]
    bodies: st.SearchStrategy[bytes]
    envelope: Callable[[bytes], object] | None = None


PARSERS = [
    Parser(
        "shopify",
        shopify.parse_shopify_webhook,
        ("orders/create", "orders/cancelled", "refunds/create", "inventory_levels/update"),
        st.one_of(
            hostile_json(SHOPIFY_ORDER), hostile_json(SHOPIFY_REFUND), hostile_json(SHOPIFY_LEVEL)
        ),
    ),
    Parser(
        "walmart",
        walmart.parse_walmart_webhook,
        ("PO_CREATED", "PO_LINE_AUTOCANCELLED", "ORDER_UPDATES", "INVENTORY_OOS"),
        hostile_json(WALMART_ORDER),
        walmart.walmart_webhook_envelope,
    ),
    Parser(
        "tiktok",
        tiktok.parse_tiktok_webhook,
        ("ORDER_STATUS_CHANGE", tiktok.ORDER_CANCELLED_TOPIC, "SELLER_DEAUTHORIZATION"),
        hostile_json(TIKTOK_ORDER),
        tiktok.tiktok_webhook_envelope,
    ),
    Parser(
        "ebay",
        ebay.parse_platform_notification,
        ("FixedPriceTransaction", "ItemSold"),
        st.one_of(hostile_xml(EBAY_FIELDS), hostile_json(EBAY_POLLED)),
        ebay.platform_notification_envelope,
    ),
    Parser(
        "amazon",
        amazon.parse_notification,
        ("ORDER_CHANGE", "FBA_INVENTORY_AVAILABILITY_CHANGES", "FEED_PROCESSING_FINISHED"),
        st.one_of(hostile_json(AMAZON_ORDER), hostile_json(AMAZON_FBA)),
        lambda body: amazon.pulled_of_sqs({"Body": body.decode("utf-8", "replace")}),
    ),
]


def read(parser: Parser, topic: str, body: bytes) -> WebhookMessage | None:
    """The message ingest would apply, or None when it would quarantine the body."""
    connector: Any = SimpleNamespace(parse_webhook=parser.parse)
    try:
        return ingest.read_message(connector=connector, topic=topic, body=body)
    except WebhookParseError:
        return None


def assert_storable(message: WebhookMessage) -> None:
    """What the ledger and the listings' look-ups can hold: no reference or identifier
    with NUL or beyond its column, no quantity beyond MAX_QUANTITY."""
    for reference in (message.reference, message.sub_reference):
        assert isinstance(reference, str) and "\x00" not in reference
        assert len(reference) <= ingest.MAX_REFERENCE_LENGTH
    for line in message.lines:
        assert isinstance(line.reference, str) and "\x00" not in line.reference
        assert len(line.reference) <= ingest.MAX_REFERENCE_LENGTH
        assert isinstance(line.quantity, int) and not isinstance(line.quantity, bool)
        if line.problem:
            continue
        if message.kind == MessageKind.INVENTORY_CHANGED:
            assert abs(line.quantity) <= MAX_QUANTITY
        else:
            assert 0 <= line.quantity <= MAX_QUANTITY
        for name, value in line.identifiers.items():
            assert isinstance(value, str) and "\x00" not in name + value
    for count in message.stock_counts:
        for figure in (count.fulfillable, count.inbound, count.reserved, count.researching):
            assert isinstance(figure, int) and 0 <= figure <= MAX_QUANTITY


@pytest.mark.parametrize("parser", PARSERS, ids=lambda parser: parser.name)
def test_a_parser_reads_any_body_as_a_storable_message_or_a_parse_error(parser):
    """No body makes a parser raise anything but a parse error, and what it reads fits."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(topic=st.sampled_from(parser.topics), body=parser.bodies)
    def check(topic: str, body: bytes) -> None:
        if parser.envelope is not None:
            with contextlib.suppress(WebhookParseError):
                parser.envelope(body)
        message = read(parser, topic, body)
        if message is not None:
            assert_storable(message)

    check()


def test_the_seeds_are_valid_so_the_mutations_start_from_real_messages():
    """A control: every seed payload is read as a message that moves stock."""
    seeds = [
        (PARSERS[0], "orders/create", SHOPIFY_ORDER),
        (PARSERS[1], "PO_CREATED", WALMART_ORDER),
        (PARSERS[2], "ORDER_STATUS_CHANGE", TIKTOK_ORDER),
        (PARSERS[4], "ORDER_CHANGE", AMAZON_ORDER),
    ]
    for parser, topic, payload in seeds:
        message = read(parser, topic, json.dumps(payload).encode())
        assert message is not None and message.kind == MessageKind.ORDER_PLACED, parser.name
        assert [line.quantity for line in message.lines] in ([2], [1]), parser.name
    message = read(PARSERS[3], "FixedPriceTransaction", ebay_xml(EBAY_FIELDS))
    assert message is not None and [line.quantity for line in message.lines] == [2]


def test_a_body_nested_beyond_the_bound_is_a_parse_error_on_every_platform():
    """Nesting too deep for the parser's bound, or for Python's recursion, is a parse error
    (quarantine), both at the receiver's envelope and at ingest."""
    for parser in PARSERS:
        for body in (deeply_nested(65), deeply_nested(100_000)):
            assert read(parser, parser.topics[0], body) is None, parser.name
            if parser.envelope is not None and parser.name != "amazon":
                with pytest.raises(WebhookParseError):
                    parser.envelope(body)


# -----------------------------------------------------------------------------------------
# Through the receiver, signed as each platform signs
# -----------------------------------------------------------------------------------------

SECRET = "fuzz-webhook-secret-of-32-characters"
TIKTOK_APP_KEY = "fuzz-app-key"
EBAY_DEV_ID, EBAY_APP_ID = "fuzz-dev-id", "fuzz-app-id"


@dataclass(frozen=True)
class Sender:
    platform: str
    bodies: st.SearchStrategy[bytes]
    # (body, topic) -> the headers of a delivery signed as the platform signs it.
    headers: Callable[[bytes, str], dict[str, str]]
    topics: tuple[str, ...] = ("",)
    credentials: dict[str, str] | None = None


def _walmart_headers(body: bytes, topic: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return {walmart.DEFAULT_AUTH_HEADER: digest.hex()}


def _ebay_bodies() -> st.SearchStrategy[bytes]:
    """XML signed in its own header: the fuzzed fields around a valid signature."""
    texts = st.one_of(st.text(max_size=40).map(escape), json_leaves.map(lambda v: escape(str(v))))
    fields = st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), texts) if name != "Timestamp" else st.just(value)
            for name, value in EBAY_FIELDS.items()
        }
    )
    signature = ebay.signature(
        EBAY_FIELDS["Timestamp"], dev_id=EBAY_DEV_ID, app_id=EBAY_APP_ID, cert_id=SECRET
    )
    return fields.map(lambda values: ebay_xml(values, signature))


SENDERS = [
    Sender(
        Channel.Platform.SHOPIFY,
        st.one_of(hostile_json(SHOPIFY_ORDER), hostile_json(SHOPIFY_LEVEL)),
        lambda body, topic: {
            shopify.HMAC_HEADER: shopify_signature(SECRET, body),
            shopify.TOPIC_HEADER: topic,
            shopify.WEBHOOK_ID_HEADER: hashlib.sha256(body).hexdigest(),
        },
        topics=("orders/create", "orders/cancelled", "inventory_levels/update"),
    ),
    Sender(Channel.Platform.WALMART, hostile_json(WALMART_ORDER), _walmart_headers),
    Sender(
        Channel.Platform.TIKTOK,
        hostile_json(TIKTOK_ORDER),
        lambda body, topic: {
            "Authorization": tiktok_signature(app_key=TIKTOK_APP_KEY, secret=SECRET, body=body)
        },
        credentials={"app_key": TIKTOK_APP_KEY},
    ),
    Sender(
        Channel.Platform.EBAY,
        _ebay_bodies(),
        lambda body, topic: {},
        credentials={"dev_id": EBAY_DEV_ID, "client_id": EBAY_APP_ID},
    ),
]


@pytest.fixture(autouse=True)
def fresh_channel_cache():
    receive.forget_cached_channels()
    yield
    receive.forget_cached_channels()


def stock_figures() -> list[tuple[int, int, int, int]]:
    return sorted(StockLevel.objects.values_list("pk", "on_hand", "committed", "reserved"))


@pytest.mark.django_db
@pytest.mark.parametrize("sender", SENDERS, ids=lambda sender: sender.platform)
def test_hostile_signed_deliveries_are_stored_quarantined_and_move_no_stock(sender, monkeypatch):
    """Signed hostile bodies through the receiver, then ingest: never a 5xx, never a
    receipt failed for a retry; an unreadable body is quarantined; stock moves only for a
    body its parser reads as a valid order of the mapped listing."""
    monkeypatch.setattr("channels.pipeline.enqueue.enqueue_webhook_processing", lambda _: None)
    # The bodies carry fixed timestamps, and this is about parsing: the window for signed
    # timestamps (eBay, TikTok Shop) is tested in test_webhook_trust.py.
    monkeypatch.setattr(django_settings, "WEBHOOK_TIMESTAMP_TOLERANCE_S", 10 * 365 * 86_400)
    warehouse = factories.make_location()
    channel = factories.make_channel(
        platform=sender.platform,
        locations=[warehouse],
        webhook_secret=SECRET,
        credentials=sender.credentials or {},
        mode=Channel.Mode.ACTIVE,
    )
    sku = factories.make_sku(code="FUZZ-1")
    factories.stock(sku, warehouse, 1000)
    factories.make_listing(
        channel=channel,
        sku=sku,
        external_id="FUZZ-1",
        extra_identifiers={"variant_id": "123", "sku": "FUZZ-1", "sku_id": "1729"},
    )
    parser = next(parser for parser in PARSERS if parser.name == sender.platform)
    client = Client()
    url = f"/webhooks/{sender.platform}/{channel.slug}/"

    @settings(
        max_examples=RECEIVER_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(topic=st.sampled_from(sender.topics), body=sender.bodies)
    def check(topic: str, body: bytes) -> None:
        before = stock_figures()
        events_before = InventoryEvent.objects.count()
        answer = client.post(
            url, data=body, content_type="application/json", headers=sender.headers(body, topic)
        )
        assert answer.status_code < 500, answer.content
        assert answer["Content-Type"] == "application/json"
        receipt = WebhookReceipt.objects.order_by("-pk").first()
        if answer.status_code != 200 or answer.json()["status"] != "accepted":
            assert stock_figures() == before
            return
        assert receipt is not None
        if receipt.status == WebhookReceipt.Status.RECEIVED:
            ingest.process_receipt(receipt_id=receipt.pk)
            receipt.refresh_from_db()
        message = read(parser, receipt.topic, bytes(receipt.body))
        if receipt.status == WebhookReceipt.Status.FAILED:
            # Only an order that names no lines may fail (for a retry): its lines are
            # fetched from the platform, which is not reachable from this test.
            assert message is not None and not message.lines, receipt.error
        if message is None:
            assert receipt.status == WebhookReceipt.Status.QUARANTINED
        if message is None or not message.lines or message.kind == MessageKind.IGNORED:
            assert stock_figures() == before
            assert InventoryEvent.objects.count() == events_before
        else:
            assert_storable(message)

    check()
    # The run reached both ends: deliveries stored and read, and deliveries quarantined.
    receipts = WebhookReceipt.objects.filter(channel=channel)
    assert receipts.exclude(status=WebhookReceipt.Status.QUARANTINED).exists()
    assert receipts.filter(status=WebhookReceipt.Status.QUARANTINED).exists()
