"""Walmart webhooks: auth, envelope and payloads (pure), and bursts through the receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from channels.connectors.types import MessageKind, WebhookParseError
from channels.connectors.walmart import webhooks
from channels.connectors.walmart.client import WalmartClient
from channels.models import PendingPush, PushAttempt, WebhookReceipt
from channels.pipeline import ingest, push
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.connectors.drivers import OpenChannel, WalmartDriver

KEY = "s3cret"
BODY = json.dumps(
    {
        "source": {
            "eventType": "PO_CREATED",
            "eventId": "evt-1",
            "eventTime": "2026-01-10T12:00:00Z",
        },
        "payload": {
            "purchaseOrderId": "1796277083022",
            "orderLines": [
                {
                    "lineNumber": "1",
                    "sku": "SKU_0001",
                    "quantity": {"unitOfMeasure": "EACH", "measurementValue": "2"},
                }
            ],
        },
    }
).encode()


def _hmac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def test_an_hmac_of_the_body_verifies_in_hex_or_base64_and_nothing_else_does():
    """§3.1: HMAC-SHA256 of the raw body in the configured header; the encoding is not
    documented, so both are taken; another secret, another body or no header are not."""
    digest = _hmac(KEY, BODY)

    def verify(value: str | None, *, secret: str = KEY, body: bytes = BODY) -> bool:
        headers = {} if value is None else {"x-walmart-signature": value}
        return webhooks.verify_walmart_webhook(
            secret=secret, headers=headers, body=body, method="HMAC", header="X-Walmart-Signature"
        )

    assert verify(digest.hex())
    assert verify(base64.b64encode(digest).decode())
    assert not verify(_hmac("other", BODY).hex())
    assert not verify(digest.hex(), body=BODY + b" ")
    assert not verify(None)
    assert not verify(digest.hex(), secret="")


def test_basic_auth_verifies_the_configured_user_and_password():
    """§3.1 BASIC_AUTH: the header is Base64("user:password")."""
    good = "Basic " + base64.b64encode(b"walmart:pw").decode()
    bad = "Basic " + base64.b64encode(b"walmart:nope").decode()
    for value, expected in ((good, True), (bad, False)):
        assert (
            webhooks.verify_walmart_webhook(
                secret="walmart:pw",
                headers={"Authorization": value},
                body=BODY,
                method="BASIC_AUTH",
                header="Authorization",
            )
            is expected
        )


def test_the_envelope_is_the_event_type_and_its_event_id():
    """§3.1: ``source.eventId`` is the key to deduplicate on."""
    envelope = webhooks.walmart_webhook_envelope(BODY)
    assert (envelope.topic, envelope.dedupe_key) == ("PO_CREATED", "evt-1")
    with pytest.raises(WebhookParseError):
        webhooks.walmart_webhook_envelope(b'{"payload": {}}')


def test_order_events_parse_to_commits_and_releases_and_oos_to_a_level():
    """PO_CREATED commits its lines; PO_LINE_AUTOCANCELLED and ORDER_UPDATES cancellations
    release theirs; an intent to cancel moves nothing; INVENTORY_OOS reports 0."""
    placed = webhooks.parse_walmart_webhook("PO_CREATED", BODY)
    assert placed.kind == MessageKind.ORDER_PLACED and placed.reference == "1796277083022"
    assert [(line.reference, line.quantity, dict(line.identifiers)) for line in placed.lines] == [
        ("1", 2, {"sku": "SKU_0001"})
    ]
    envelope = json.loads(BODY)
    for sub_event, kind in (
        ("PO_LINE_AUTOCANCELLED", MessageKind.ORDER_CANCELLED),
        ("FRAUD_CANCEL", MessageKind.ORDER_CANCELLED),
        ("PO_CREATED", MessageKind.ORDER_PLACED),
        ("INTENT_TO_CANCEL", MessageKind.IGNORED),
    ):
        body = {**envelope, "payload": {**envelope["payload"], "subEventType": sub_event}}
        assert (
            webhooks.parse_walmart_webhook("ORDER_UPDATES", json.dumps(body).encode()).kind == kind
        )
    cancelled = webhooks.parse_walmart_webhook("PO_LINE_AUTOCANCELLED", BODY)
    assert cancelled.kind == MessageKind.ORDER_CANCELLED and len(cancelled.lines) == 1
    oos = webhooks.parse_walmart_webhook(
        "INVENTORY_OOS", b'{"source": {"eventId": "e"}, "payload": {"sku": "SKU_0001"}}'
    )
    assert oos.kind == MessageKind.INVENTORY_CHANGED and oos.lines[0].quantity == 0
    with pytest.raises(WebhookParseError):
        webhooks.parse_walmart_webhook(
            "PO_CREATED", b'{"source": {}, "payload": {"orderLines": 3}}'
        )


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored: the assertions then see it not applied."""


def _drain(opened: OpenChannel, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_orders_with_duplicates_and_a_cancelled_line_commits_each_once(
    walmart_simulator, live_server
):
    """Six orders, each delivered three times, then one line auto-cancelled: every order
    commits once, the cancelled line is released, and the other channel shows the rest."""
    location = factories.make_location()
    skus = [factories.make_sku() for _ in range(3)]
    for sku in skus:
        factories.stock(sku, location, 50)
    driver = WalmartDriver(walmart_simulator)
    driver.feed_threshold = 10
    selling = driver.open_channel(skus=skus, location=location, receiver_url=live_server.url)
    other = driver.open_channel(skus=skus, location=location)
    _drain(selling)
    _drain(other)
    orders = []
    for index in range(6):
        first, second = skus[index % 3], skus[(index + 1) % 3]
        answer = walmart_simulator.place_order(
            selling.tenant,
            [{"sku": first.code, "quantity": 1}, {"sku": second.code, "quantity": 2}],
            duplicates=2,
        )
        orders.append(answer["purchase_order_id"])
    cancelled = walmart_simulator.cancel_order(
        selling.tenant, orders[0], lines=["2"], duplicates=1
    )
    assert cancelled["line_numbers"] == ["2"]

    receipts = WebhookReceipt.objects.filter(channel=selling.channel)
    assert receipts.count() == 7
    ingest.process_new_receipts(retry=_leave_for_later)
    assert set(receipts.values_list("status", flat=True)) == {WebhookReceipt.Status.PROCESSED}
    commits = InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED)
    assert sorted(commits.values_list("external_reference", flat=True)) == sorted(orders * 2)
    # Each SKU: 2 lines of 1 and 2 of 2 (6), less the cancelled line of 2 for one of them.
    released = InventoryEvent.objects.get(kind=EventKind.ORDER_CANCELLED)
    assert (released.external_reference, released.delta_committed) == (orders[0], -2)
    _drain(selling)
    _drain(other)
    for sku in skus:
        level = StockLevel.objects.get(sku=sku, location=location)
        expected_committed = 4 if sku == skus[1] else 6
        assert level.committed == expected_committed
    shown = walmart_simulator.items(other.tenant)
    assert [shown[sku.code]["availToSellQty"] for sku in skus] == [44, 46, 44]
    selling_shown = walmart_simulator.items(selling.tenant)
    assert [selling_shown[sku.code]["availToSellQty"] for sku in skus] == [44, 46, 44]


@pytest.mark.django_db(transaction=True)
def test_a_wrong_or_missing_signature_is_refused_and_an_unreadable_signed_body_quarantined(
    walmart_simulator, live_server
):
    """401 for a delivery signed with another secret or not at all, nothing stored; a
    correctly signed body without a readable envelope is stored quarantined and answered
    200, so Walmart stops retrying it."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 5)
    opened = WalmartDriver(walmart_simulator).open_channel(
        skus=[sku], location=location, receiver_url=live_server.url
    )
    secret = opened.channel.webhook_secret

    def post(body: bytes, signature: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Walmart-Signature"] = signature
        return requests.post(
            opened.webhook_url, data=body, headers=headers, timeout=10
        ).status_code

    assert post(BODY, _hmac("not-the-secret", BODY).hex()) == 401
    assert post(BODY, None) == 401
    assert not WebhookReceipt.objects.filter(channel=opened.channel).exists()

    garbage = b"{not json"
    assert post(garbage, _hmac(secret, garbage).hex()) == 200
    receipt = WebhookReceipt.objects.get(channel=opened.channel)
    assert receipt.status == WebhookReceipt.Status.QUARANTINED and receipt.error
    assert receipt.headers.get("X-Walmart-Signature") == _hmac(secret, garbage).hex()

    bad_payload = b'{"source": {"eventType": "PO_CREATED", "eventId": "e-2"}, "payload": 3}'
    assert post(bad_payload, _hmac(secret, bad_payload).hex()) == 200
    ingest.process_new_receipts(retry=_leave_for_later)
    stored = WebhookReceipt.objects.get(channel=opened.channel, dedupe_key="e-2")
    assert stored.status == WebhookReceipt.Status.QUARANTINED
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).exists()


def test_webhook_subscriptions_are_kept_listed_and_set_where_deliveries_go(walmart_simulator):
    """§3.1: the event types are listed; a subscription is answered with its id and without
    its secret, listed, and, ACTIVE, makes its URL and HMAC key the seller's delivery
    settings; an unsupported auth method is refused with Walmart's error body; a deleted
    subscription is gone."""
    tenant = f"subscriptions-{time.monotonic_ns()}"
    walmart_simulator.create_seller(tenant, client_id="cid", client_secret="csecret")
    client = WalmartClient(
        base_url=walmart_simulator.seller_url(tenant),
        client_id="cid",
        client_secret="csecret",
        read_timeout_s=5,
    )
    event_types = client.call("GET", "/v3/webhooks/eventTypes").json()["events"]
    assert {"PO_CREATED", "PO_LINE_AUTOCANCELLED", "ORDER_UPDATES", "INVENTORY_OOS"} <= {
        event["eventType"] for event in event_types
    }

    created = client.call(
        "POST",
        "/v3/webhooks/subscriptions",
        json={
            "eventType": "PO_CREATED",
            "eventVersion": "V1",
            "resourceName": "ORDER",
            "eventUrl": "https://nventory.example/webhooks/walmart/shop",
            "authDetails": {
                "authMethod": "HMAC",
                "authHeaderName": "X-Sig",
                "clientSecret": "hmac-key",
            },
            "status": "ACTIVE",
        },
    )
    subscription = created.json()
    assert created.status_code == 200 and subscription["subscriptionId"]
    assert subscription["authDetails"] == {"authMethod": "HMAC", "authHeaderName": "X-Sig"}
    assert "hmac-key" not in created.text
    listed = client.call("GET", "/v3/webhooks/subscriptions").json()["events"]
    assert listed == [subscription]
    settings = walmart_simulator.update_seller(tenant)["seller"]
    assert (settings["webhook_url"], settings["webhook_auth_header"]) == (
        "https://nventory.example/webhooks/walmart/shop",
        "X-Sig",
    )

    refused = client.call(
        "POST",
        "/v3/webhooks/subscriptions",
        json={
            "eventType": "PO_CREATED",
            "eventUrl": "https://nventory.example/other",
            "authDetails": {"authMethod": "OAUTH", "authHeaderName": "Authorization"},
        },
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "INVALID_REQUEST_PARAM.GMP_WEBHOOK_API"

    deleted = client.call("DELETE", f"/v3/webhooks/subscriptions/{subscription['subscriptionId']}")
    assert deleted.status_code == 200
    assert client.call("GET", "/v3/webhooks/subscriptions").json()["events"] == []
