"""Webhook trust beyond the signature: what the unsigned parts of a delivery may decide.

A captured delivery is valid for ever where nothing but the body is signed (Shopify): its
topic header and delivery id can be changed at will. These tests resend real bodies as an
attacker would, through the receiver and the ingest worker, and count what moved.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import time

import pytest

from channels.connectors.ebay import webhooks as ebay_webhooks
from channels.connectors.shopify import webhooks as shopify_webhooks
from channels.connectors.tiktok import webhooks as tiktok_webhooks
from channels.connectors.walmart import webhooks as walmart_webhooks
from channels.models import Channel, ChannelAlert, WebhookReceipt
from channels.pipeline import alerts, ingest, receive
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "shpss_trust_tests_0123456789abcdef"
URL = "/webhooks/shopify/shop/"


@pytest.fixture(autouse=True)
def fresh_channel_cache():
    receive.forget_cached_channels()
    yield
    receive.forget_cached_channels()


@pytest.fixture
def enqueued(monkeypatch):
    receipt_ids: list[int] = []
    monkeypatch.setattr("channels.pipeline.enqueue.enqueue_webhook_processing", receipt_ids.append)
    return receipt_ids


@pytest.fixture
def warehouse():
    return factories.make_location()


@pytest.fixture
def channel(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shop", webhook_secret=SECRET)


@pytest.fixture
def shirt(channel, warehouse):
    sku = factories.make_sku()
    factories.stock(sku, warehouse, 10)
    factories.make_listing(
        channel=channel, sku=sku, external_id="1", extra_identifiers={"variant_id": "123"}
    )
    return sku


# An orders/create body as Shopify sends it (REST Order, trimmed; CHANNEL_APIS.md §1.1).
ORDER = json.dumps(
    {
        "id": 5678901234,
        "created_at": "2026-11-27T10:00:00-05:00",
        "cancelled_at": None,
        "line_items": [{"id": 111, "variant_id": 123, "sku": "TSHIRT-001", "quantity": 3}],
    }
).encode()
REFUND = json.dumps(
    {
        "id": 929361464,
        "order_id": 5678901234,
        "refund_line_items": [
            {"id": 1, "line_item_id": 111, "quantity": 3, "restock_type": "cancel"}
        ],
    }
).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post(client, body: bytes, *, topic: str, delivery_id: str):
    return client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": delivery_id,
            "X-Shopify-Hmac-Sha256": sign(body),
        },
    )


def committed(sku, location) -> int:
    return StockLevel.objects.get(sku=sku, location=location).committed


def deliver(client, body: bytes, *, topic: str, delivery_id: str, capture) -> dict:
    """One delivery through the receiver, then the ingest worker on what it stored."""
    before = set(WebhookReceipt.objects.values_list("pk", flat=True))
    with capture(execute=True):
        answer = post(client, body, topic=topic, delivery_id=delivery_id)
    assert answer.status_code == 200
    for receipt_id in set(WebhookReceipt.objects.values_list("pk", flat=True)) - before:
        ingest.process_receipt(receipt_id=receipt_id)
    return answer.json()


def test_a_captured_order_resent_as_a_cancellation_releases_nothing_and_is_not_stored_valid(
    client, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """The order commits 3 units; its body resent as orders/cancelled (the topic header is
    not signed) is quarantined at the door with the reason, never applied: 3 stay
    committed."""
    capture = django_capture_on_commit_callbacks
    assert deliver(client, ORDER, topic="orders/create", delivery_id="d-1", capture=capture) == {
        "status": "accepted"
    }
    assert committed(shirt, warehouse) == 3

    answer = deliver(client, ORDER, topic="orders/cancelled", delivery_id="d-2", capture=capture)

    assert answer == {"status": "quarantined"}
    assert committed(shirt, warehouse) == 3
    refused = WebhookReceipt.objects.get(topic="orders/cancelled")
    assert refused.status == WebhookReceipt.Status.QUARANTINED
    assert "cancelled_at" in refused.error and "contradicts" in refused.error
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED).exists()


def test_the_same_body_with_a_hundred_fresh_delivery_ids_is_stored_once(
    client, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """100 deliveries of one captured order body, each with a new delivery id, and 100 of
    it as orders/cancelled: at most one receipt of each, committed stock unchanged."""
    capture = django_capture_on_commit_callbacks
    deliver(client, ORDER, topic="orders/create", delivery_id="genuine", capture=capture)
    assert committed(shirt, warehouse) == 3

    answers = [
        deliver(client, ORDER, topic=topic, delivery_id=f"forged-{topic}-{n}", capture=capture)
        for topic in ("orders/create", "orders/cancelled")
        for n in range(100)
    ]

    assert committed(shirt, warehouse) == 3
    assert WebhookReceipt.objects.filter(topic="orders/create").count() == 1
    assert WebhookReceipt.objects.filter(topic="orders/cancelled").count() == 1
    assert answers.count({"status": "duplicate"}) == 199
    assert InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).count() == 1


def test_a_body_resent_under_made_up_topics_is_stored_once_more_at_most(
    client, shirt, enqueued, django_capture_on_commit_callbacks
):
    """Topics nothing acts on count as one: a 1 MiB body cannot be stored again and again
    under topic-1, topic-2..."""
    capture = django_capture_on_commit_callbacks
    answers = [
        deliver(client, ORDER, topic=f"made/up-{n}", delivery_id=f"x-{n}", capture=capture)
        for n in range(20)
    ]
    assert answers[0] == {"status": "accepted"}
    assert answers[1:] == [{"status": "duplicate"}] * 19
    assert WebhookReceipt.objects.count() == 1


def test_a_refund_and_an_order_resent_under_each_others_topic_are_refused(
    client, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """A refund body as orders/create, an order body as refunds/create or as an inventory
    level: each quarantined, nothing moves."""
    capture = django_capture_on_commit_callbacks
    deliver(client, ORDER, topic="orders/create", delivery_id="genuine", capture=capture)
    for body, topic in (
        (REFUND, "orders/create"),
        (ORDER, "refunds/create"),
        (ORDER, "inventory_levels/update"),
        (REFUND, "orders/cancelled"),
    ):
        answer = deliver(client, body, topic=topic, delivery_id=f"{topic}-x", capture=capture)
        assert answer == {"status": "quarantined"}, topic
    assert committed(shirt, warehouse) == 3
    assert StockLevel.objects.get(sku=shirt, location=warehouse).on_hand == 10
    assert WebhookReceipt.objects.filter(status=WebhookReceipt.Status.QUARANTINED).count() == 4


def test_a_genuine_cancellation_still_applies(
    client, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """What the checks let through: the real cancelled order (with its cancelled_at)."""
    capture = django_capture_on_commit_callbacks
    deliver(client, ORDER, topic="orders/create", delivery_id="a", capture=capture)
    cancelled = json.dumps(
        {**json.loads(ORDER), "cancelled_at": "2026-11-27T10:05:00-05:00"}
    ).encode()
    assert deliver(
        client, cancelled, topic="orders/cancelled", delivery_id="b", capture=capture
    ) == {"status": "accepted"}
    assert committed(shirt, warehouse) == 0


def test_past_the_quarantine_cap_nothing_more_is_stored_and_an_alert_is_raised(
    client, channel, shirt, enqueued, settings, caplog, django_capture_on_commit_callbacks
):
    """Cap 3: five different contradicting bodies store three; the fourth opens one alert
    (an ERROR in the log and a row), the fifth counts on it."""
    settings.WEBHOOK_QUARANTINE_CAP = 3
    capture = django_capture_on_commit_callbacks
    bodies = [ORDER.replace(b"5678901234", str(5678901234 + n).encode()) for n in range(5)]
    with caplog.at_level(logging.ERROR, logger="channels.pipeline.alerts"):
        answers = [
            deliver(client, body, topic="orders/cancelled", delivery_id=f"q-{n}", capture=capture)
            for n, body in enumerate(bodies)
        ]

    assert answers == [{"status": "quarantined"}] * 3 + [{"status": "quarantine_full"}] * 2
    assert WebhookReceipt.objects.filter(status=WebhookReceipt.Status.QUARANTINED).count() == 3
    alert = ChannelAlert.objects.get(channel=channel)
    assert (alert.kind, alert.occurrences, alert.resolved_at) == (
        ChannelAlert.Kind.QUARANTINE_FULL,
        2,
        None,
    )
    assert [record.levelno for record in caplog.records] == [logging.ERROR]

    # Deleting what was looked at makes room; resolving the alert lets the next one open.
    WebhookReceipt.objects.filter(status=WebhookReceipt.Status.QUARANTINED).delete()
    assert alerts.resolve_alerts(alert_ids=[alert.pk]) == 1
    assert deliver(
        client, bodies[4], topic="orders/cancelled", delivery_id="q-again", capture=capture
    ) == {"status": "quarantined"}


def test_a_receipt_quarantined_by_ingest_counts_towards_the_cap(channel, settings):
    """The worker's quarantines (bodies that cannot be read) fill the same cap."""
    settings.WEBHOOK_QUARANTINE_CAP = 1
    receipt_id = receive.record_receipt(
        channel_id=channel.pk,
        topic="orders/create",
        dedupe_key="unreadable",
        headers={},
        body=b'{"id": 1, "line_items": "garbage"}',
    )
    assert receipt_id is not None
    ingest.process_receipt(receipt_id=receipt_id)
    assert WebhookReceipt.objects.get(pk=receipt_id).status == WebhookReceipt.Status.QUARANTINED
    assert ChannelAlert.objects.filter(
        channel=channel, kind=ChannelAlert.Kind.QUARANTINE_FULL, resolved_at=None
    ).exists()


# -- Each platform's topic checks (pure functions) ---------------------------------------


@pytest.mark.parametrize(
    ("topic", "body", "contradicts"),
    [
        ("orders/create", ORDER, False),
        ("orders/cancelled", ORDER, True),
        ("orders/create", REFUND, True),
        ("refunds/create", REFUND, False),
        ("refunds/create", ORDER, True),
        ("inventory_levels/update", ORDER, True),
        ("inventory_levels/update", b'{"inventory_item_id": 1, "available": null}', False),
        ("orders/updated", REFUND, False),
        ("orders/cancelled", b"{not json", False),
    ],
)
def test_shopify_topics_that_contradict_their_body(topic, body, contradicts):
    """A body that cannot be read is not a contradiction: ingest quarantines it."""
    assert bool(shopify_webhooks.topic_contradiction(topic, body)) is contradicts


def test_walmart_event_types_that_contradict_their_payload():
    """Under BASIC_AUTH nothing is signed: an order event names its order, an out-of-stock
    event an item."""
    order = {"purchaseOrderId": "1", "orderLines": []}

    def body(event_type: str, payload: dict) -> bytes:
        return json.dumps({"source": {"eventType": event_type}, "payload": payload}).encode()

    assert walmart_webhooks.topic_contradiction("PO_CREATED", body("PO_CREATED", order)) == ""
    assert walmart_webhooks.topic_contradiction("INVENTORY_OOS", body("INVENTORY_OOS", order))
    assert walmart_webhooks.topic_contradiction("PO_CREATED", body("PO_CREATED", {"sku": "S"}))
    assert walmart_webhooks.topic_contradiction("ORDER_UPDATES", body("ORDER_UPDATES", order))
    assert not walmart_webhooks.topic_contradiction(
        "ORDER_UPDATES", body("ORDER_UPDATES", {**order, "subEventType": "PO_CREATED"})
    )


def test_an_ebay_order_event_without_its_transaction_contradicts_itself():
    without = (
        b"<Envelope><Body><Timestamp>2026-12-01T10:00:00.000Z</Timestamp>"
        b"<NotificationEventName>FixedPriceTransaction</NotificationEventName>"
        b"</Body></Envelope>"
    )
    assert ebay_webhooks.topic_contradiction("FixedPriceTransaction", without)
    assert not ebay_webhooks.topic_contradiction("ItemListed", without)


def test_a_tiktok_event_of_another_shop_contradicts_the_channel():
    """The app secret signs every shop's events alike: a channel that names its shop takes
    only that shop's."""
    body = json.dumps({"type": 6, "shop_id": "other-shop", "timestamp": 1}).encode()
    assert tiktok_webhooks.shop_contradiction(body, shop_id="my-shop")
    assert not tiktok_webhooks.shop_contradiction(body, shop_id="other-shop")
    assert not tiktok_webhooks.shop_contradiction(body, shop_id="")


# -- Signed timestamps --------------------------------------------------------------------


def _tiktok_channel(warehouse, **platform_settings) -> Channel:
    return factories.make_channel(
        locations=[warehouse],
        slug="tiktok-shop",
        platform=Channel.Platform.TIKTOK,
        credentials={"app_key": "key-1", "app_secret": "app-secret-0123456789abcdef"},
        webhook_secret="app-secret-0123456789abcdef",
        platform_settings=platform_settings,
    )


def _post_tiktok(client, envelope: dict):
    body = json.dumps(envelope).encode()
    signature = hmac.new(
        b"app-secret-0123456789abcdef", b"key-1" + body, hashlib.sha256
    ).hexdigest()
    return client.post(
        "/webhooks/tiktok/tiktok-shop/",
        data=body,
        content_type="application/json",
        headers={"Authorization": signature},
    )


def test_a_tiktok_delivery_signed_outside_the_window_is_refused(client, warehouse, settings):
    """The envelope's timestamp is signed with the body: 10 minutes old, or ahead, is a
    replay (401, nothing stored); now is accepted, then deduplicated."""
    settings.WEBHOOK_TIMESTAMP_TOLERANCE_S = 300
    _tiktok_channel(warehouse)
    now = int(time.time())

    def envelope(at: int, n: int) -> dict:
        return {"type": 4, "tts_notification_id": f"ntf-{n}", "shop_id": "s", "timestamp": at}

    assert _post_tiktok(client, envelope(now - 600, 1)).status_code == 401
    assert _post_tiktok(client, envelope(now + 600, 2)).status_code == 401
    assert _post_tiktok(client, {**envelope(now, 3), "timestamp": None}).status_code == 401
    assert not WebhookReceipt.objects.exists()
    accepted = _post_tiktok(client, envelope(now - 30, 4))
    assert (accepted.status_code, accepted.json()) == (200, {"status": "accepted"})
    assert _post_tiktok(client, envelope(now - 30, 4)).json() == {"status": "duplicate"}


def test_a_tiktok_deauthorization_of_another_shop_does_not_pause_the_channel(
    client, warehouse, enqueued, django_capture_on_commit_callbacks
):
    channel = _tiktok_channel(warehouse, shop_id="my-shop")
    Channel.objects.filter(pk=channel.pk).update(mode=Channel.Mode.ACTIVE)
    envelope = {
        "type": 6,
        "tts_notification_id": "ntf-deauth",
        "shop_id": "someone-elses-shop",
        "timestamp": int(time.time()),
    }
    with django_capture_on_commit_callbacks(execute=True):
        answer = _post_tiktok(client, envelope)
    for receipt_id in enqueued:
        ingest.process_receipt(receipt_id=receipt_id)
    assert answer.json() == {"status": "quarantined"}
    assert Channel.objects.get(pk=channel.pk).mode == Channel.Mode.ACTIVE


def _ebay_notification(timestamp: str) -> bytes:
    signature = ebay_webhooks.signature(
        timestamp, dev_id="dev-1", app_id="app-1", cert_id="cert-0123456789abcdefghijkl"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Header><ebl:RequesterCredentials xmlns:ebl='urn:ebay:apis:eBLBaseComponents'>"
        f"<ebl:NotificationSignature>{signature}</ebl:NotificationSignature>"
        "</ebl:RequesterCredentials></soapenv:Header><soapenv:Body>"
        '<GetItemTransactionsResponse xmlns="urn:ebay:apis:eBLBaseComponents">'
        f"<Timestamp>{timestamp}</Timestamp>"
        "<NotificationEventName>FixedPriceTransaction</NotificationEventName>"
        "<Item><ItemID>1</ItemID><SKU>S</SKU></Item><TransactionArray><Transaction>"
        "<QuantityPurchased>1</QuantityPurchased><TransactionID>7</TransactionID>"
        "</Transaction></TransactionArray></GetItemTransactionsResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def test_an_ebay_notification_signed_outside_the_window_is_refused(client, warehouse, settings):
    """The signature covers the SOAP Timestamp only: a captured one replayed an hour later
    (its body changed at will) is refused; a fresh one is accepted."""
    settings.WEBHOOK_TIMESTAMP_TOLERANCE_S = 300
    factories.make_channel(
        locations=[warehouse],
        slug="ebay-shop",
        platform=Channel.Platform.EBAY,
        credentials={"client_id": "app-1", "dev_id": "dev-1", "client_secret": "c"},
        webhook_secret="cert-0123456789abcdefghijkl",
    )

    def stamp(seconds_ago: float) -> str:
        moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def send(body: bytes):
        return client.post("/webhooks/ebay/ebay-shop/", data=body, content_type="text/xml")

    assert send(_ebay_notification(stamp(3600))).status_code == 401
    assert not WebhookReceipt.objects.exists()
    assert send(_ebay_notification(stamp(5))).json() == {"status": "accepted"}


def test_an_operator_sees_the_alert_and_only_a_channel_manager_resolves_it(
    client, admin_client, channel
):
    """The admin lists open alerts; its action needs the channel-management permission."""
    from django.contrib.auth.models import Permission, User

    alerts.raise_alert(
        channel_id=channel.pk, kind=ChannelAlert.Kind.QUARANTINE_FULL, message="full"
    )
    alert = ChannelAlert.objects.get()
    listing = admin_client.get("/admin/channels/channelalert/")
    assert listing.status_code == 200 and "full" in listing.content.decode()

    viewer = User.objects.create_user("viewer", password="pw-0123456789", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_channelalert"))
    client.force_login(viewer)
    refused = client.post(
        "/admin/channels/channelalert/",
        {"action": "mark_resolved", "_selected_action": [alert.pk]},
    )
    # The action is not offered to a reader (the admin answers its list again) or, forged,
    # refused: either way the alert stays open.
    assert refused.status_code in (200, 403)
    assert ChannelAlert.objects.get().resolved_at is None

    admin_client.post(
        "/admin/channels/channelalert/",
        {"action": "mark_resolved", "_selected_action": [alert.pk]},
    )
    assert ChannelAlert.objects.get().resolved_at is not None
