"""The webhook receiver: verify, store raw once, acknowledge; processing runs after commit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from unittest import mock

import pytest

from channels.models import WebhookReceipt
from channels.pipeline import ingest, receive
from inventory.models import InventoryEvent, StockLevel
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "shpss_receiver_secret_0123456789"


@pytest.fixture(autouse=True)
def fresh_channel_cache():
    receive.forget_cached_channels()
    yield
    receive.forget_cached_channels()


@pytest.fixture
def enqueued(monkeypatch):
    """Receipt ids handed to the task queue, in order."""
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


URL = "/webhooks/shopify/shop/"
ORDER = json.dumps(
    {"id": 1001, "line_items": [{"id": 11, "variant_id": 123, "sku": "S", "quantity": 2}]}
).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post(client, body: bytes, *, url: str = URL, signature: str | None = None, **headers):
    headers.setdefault("X-Shopify-Topic", "orders/create")
    headers.setdefault("X-Shopify-Webhook-Id", "delivery-1")
    headers["X-Shopify-Hmac-Sha256"] = sign(body) if signature is None else signature
    return client.post(url, data=body, content_type="application/json", headers=headers)


def process(receipt_ids: list[int]) -> None:
    for receipt_id in receipt_ids:
        ingest.process_receipt(receipt_id=receipt_id)


def committed(sku, location) -> int:
    stock_level = StockLevel.objects.filter(sku=sku, location=location).first()
    return stock_level.committed if stock_level else 0


def test_signed_delivery_is_stored_raw_and_enqueued_on_commit(
    client, channel, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            ORDER,
            **{"X-Shopify-Shop-Domain": "shop.myshopify.com", "Authorization": "Bearer x"},
            HTTP_COOKIE="sessionid=abc",
        )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    receipt = WebhookReceipt.objects.get()
    assert (receipt.channel, receipt.topic, receipt.dedupe_key) == (
        channel,
        "orders/create",
        "delivery-1",
    )
    assert bytes(receipt.body) == ORDER
    assert receipt.status == WebhookReceipt.Status.RECEIVED
    assert set(receipt.headers) == {
        "Content-Type",
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-Shop-Domain",
    }
    assert enqueued == [receipt.pk]


def test_receipt_is_not_enqueued_before_commit(client, channel, enqueued):
    """Inside the test transaction nothing commits, so nothing may be enqueued yet."""
    assert post(client, ORDER).status_code == 200
    assert enqueued == []


@pytest.mark.parametrize("body", [ORDER, b"{not json at all"], ids=["valid", "malformed"])
def test_bad_signature_is_refused_and_changes_nothing(
    client, channel, shirt, warehouse, enqueued, body, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signature=sign(body, secret="not the secret"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_signature"
    assert not WebhookReceipt.objects.exists()
    assert enqueued == []
    assert committed(shirt, warehouse) == 0


def test_missing_signature_is_refused(client, channel):
    response = client.post(
        URL,
        data=ORDER,
        content_type="application/json",
        headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "x"},
    )
    assert response.status_code == 401
    assert not WebhookReceipt.objects.exists()


def test_channel_is_found_by_platform_and_slug(client, channel):
    assert post(client, ORDER, url="/webhooks/shopify/no-such-shop/").status_code == 404
    assert post(client, ORDER, url="/webhooks/amazon/shop/").status_code == 404
    assert not WebhookReceipt.objects.exists()


def test_only_post_is_accepted(client, channel):
    assert client.get(URL).status_code == 405


def test_oversized_body_is_refused(client, channel, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 64
    body = json.dumps({"id": 1, "padding": "x" * 100}).encode()
    response = post(client, body)
    assert response.status_code == 413
    assert not WebhookReceipt.objects.exists()


def test_body_at_the_limit_is_accepted(client, channel, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = len(ORDER)
    assert post(client, ORDER).status_code == 200


def test_declared_length_over_the_limit_is_refused_before_reading(client, channel, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 64
    with mock.patch("django.core.handlers.wsgi.WSGIRequest.read") as read:
        response = client.post(
            URL,
            data=b"{}",
            content_type="application/json",
            headers={"X-Shopify-Hmac-Sha256": sign(b"{}")},
            CONTENT_LENGTH="1000000",
        )
    assert response.status_code == 413
    read.assert_not_called()


def test_signed_unparseable_body_is_accepted_then_quarantined(
    client, channel, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """A 4xx would make Shopify retry, and delete the subscription after 8 failures."""
    body = b'{"id": 1001, "line_items": "garbage"'
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body)
    assert response.status_code == 200
    process(enqueued)
    receipt = WebhookReceipt.objects.get()
    assert receipt.status == WebhookReceipt.Status.QUARANTINED
    assert receipt.error
    assert committed(shirt, warehouse) == 0


def test_signed_delivery_without_topic_or_id_is_stored_quarantined(
    client, channel, enqueued, django_capture_on_commit_callbacks
):
    """Each body once: the same one sent again without its ids is a duplicate."""
    other_order = ORDER.replace(b"1001", b"1002")
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(
            URL,
            data=ORDER,
            content_type="application/json",
            headers={"X-Shopify-Hmac-Sha256": sign(ORDER)},
        )
        second = client.post(
            URL,
            data=other_order,
            content_type="application/json",
            headers={
                "X-Shopify-Hmac-Sha256": sign(other_order),
                "X-Shopify-Topic": "orders/create",
            },
        )
        again = client.post(
            URL,
            data=ORDER,
            content_type="application/json",
            headers={"X-Shopify-Hmac-Sha256": sign(ORDER)},
        )
    assert first.status_code == second.status_code == again.status_code == 200
    assert [first.json(), second.json(), again.json()] == [
        {"status": "quarantined"},
        {"status": "quarantined"},
        {"status": "duplicate"},
    ]
    receipts = WebhookReceipt.objects.all()
    assert len(receipts) == 2
    assert {receipt.status for receipt in receipts} == {WebhookReceipt.Status.QUARANTINED}
    assert all(receipt.dedupe_key.startswith("unidentified:") for receipt in receipts)
    assert all("X-Shopify-Webhook-Id" in receipt.error for receipt in receipts)
    assert enqueued == []


def test_same_delivery_ten_times_is_stored_once_and_changes_stock_once(
    client, channel, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answers = [post(client, ORDER).json()["status"] for _ in range(10)]
    process(enqueued)

    assert answers == ["accepted"] + ["duplicate"] * 9
    assert WebhookReceipt.objects.count() == 1
    assert len(enqueued) == 1
    assert committed(shirt, warehouse) == 2


def test_same_order_in_two_deliveries_is_committed_once(
    client, channel, shirt, warehouse, enqueued, django_capture_on_commit_callbacks
):
    """Two bodies of one order (one updated since: another body, another delivery): both
    stored, the order committed once by its ledger keys."""
    updated = json.dumps({**json.loads(ORDER), "updated_at": "2026-11-27T10:05:00Z"}).encode()
    with django_capture_on_commit_callbacks(execute=True):
        post(client, ORDER, **{"X-Shopify-Webhook-Id": "first"})
        post(client, updated, **{"X-Shopify-Webhook-Id": "second"})
    process(enqueued)

    assert WebhookReceipt.objects.filter(status=WebhookReceipt.Status.PROCESSED).count() == 2
    assert committed(shirt, warehouse) == 2
    assert InventoryEvent.objects.filter(kind="order_committed").count() == 1


def test_same_delivery_id_on_two_channels_is_two_receipts(client, channel, warehouse, enqueued):
    factories.make_channel(locations=[warehouse], slug="other", webhook_secret=SECRET)
    post(client, ORDER)
    post(client, ORDER, url="/webhooks/shopify/other/")
    assert WebhookReceipt.objects.count() == 2


def test_a_known_channel_costs_one_query(client, channel, django_assert_num_queries):
    post(client, ORDER, **{"X-Shopify-Webhook-Id": "warm-up"})
    with django_assert_num_queries(1):
        assert post(client, ORDER).status_code == 200


def test_changed_secret_takes_effect_within_seconds(client, channel):
    assert post(client, ORDER, **{"X-Shopify-Webhook-Id": "a"}).status_code == 200
    channel.webhook_secret = "rotated"
    channel.save()

    later = receive.time.monotonic() + 10
    with mock.patch("channels.pipeline.receive.time.monotonic", return_value=later):
        stale = post(client, ORDER, **{"X-Shopify-Webhook-Id": "b"})
        fresh = post(
            client, ORDER, signature=sign(ORDER, secret="rotated"), **{"X-Shopify-Webhook-Id": "c"}
        )
    assert (stale.status_code, fresh.status_code) == (401, 200)


def test_channel_without_a_secret_accepts_nothing(client, channel):
    channel.webhook_secret = ""
    channel.save()
    assert post(client, ORDER, signature=sign(ORDER, secret="")).status_code == 401


@pytest.fixture
def redis_down(monkeypatch):
    """Wake-ups go to a Redis nobody listens on: every call to it fails at once."""
    import redis

    from channels.pipeline import ratelimit

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(ratelimit, "_client", lambda: dead)
    with pytest.raises(redis.ConnectionError):
        ratelimit.claim_ingest_wake()


def test_with_redis_down_a_webhook_is_still_stored_and_acknowledged(
    client, channel, shirt, warehouse, redis_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, ORDER)
    assert response.status_code == 200
    assert callbacks  # the wake-up was tried, failed, and was only logged
    receipt = WebhookReceipt.objects.get()
    assert receipt.status == WebhookReceipt.Status.RECEIVED  # the sweep takes it from here


def test_with_redis_down_a_sale_still_commits_and_owes_its_pushes(
    channel, shirt, warehouse, redis_down, django_capture_on_commit_callbacks
):
    from channels.models import PendingPush
    from inventory import services

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.commit_order(
            sku_id=shirt.pk,
            location_id=warehouse.pk,
            quantity=1,
            context=factories.context("redis-down-sale"),
        )
    assert callbacks
    assert committed(shirt, warehouse) == 1
    assert PendingPush.objects.filter(listing__sku=shirt).exists()


def test_while_its_secret_is_rotated_the_previous_one_is_accepted_until_its_time(
    client, channel, enqueued
):
    import datetime as dt

    from django.utils import timezone

    channel.webhook_secret = "shpss_new_secret"
    channel.previous_webhook_secret = SECRET
    channel.previous_webhook_secret_until = timezone.now() + dt.timedelta(hours=1)
    channel.save()
    receive.forget_cached_channels()

    other_order = ORDER.replace(b"1001", b"1002")
    signed_with_new = post(client, ORDER, signature=sign(ORDER, "shpss_new_secret"))
    signed_with_old = post(client, other_order, **{"X-Shopify-Webhook-Id": "delivery-2"})
    assert (signed_with_new.json(), signed_with_old.json()) == (
        {"status": "accepted"},
        {"status": "accepted"},
    )

    channel.previous_webhook_secret_until = timezone.now()
    channel.save()
    receive.forget_cached_channels()
    too_late = post(client, ORDER, **{"X-Shopify-Webhook-Id": "delivery-3"})
    assert too_late.status_code == 401
    assert WebhookReceipt.objects.count() == 2


@pytest.fixture
def redis_hung(monkeypatch, settings):
    """A Redis that accepts connections and never answers (paused, or a dead peer behind a
    live socket): the pipeline's client gives up after its socket timeout."""
    import socket
    import threading

    import redis

    from channels.pipeline import ratelimit

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    settings.REDIS_SOCKET_TIMEOUT_S = 0.3
    ratelimit._client.cache_clear()
    yield redis.TimeoutError
    ratelimit._client.cache_clear()
    for connection in accepted:
        connection.close()
    listener.close()


def test_with_redis_hung_a_webhook_is_still_stored_and_acknowledged(
    client, channel, shirt, warehouse, redis_hung, django_capture_on_commit_callbacks
):
    """The wake-up times out instead of holding the acknowledgement: the receipt is stored,
    answered 200, and left for the sweep."""
    from channels.pipeline import ratelimit

    with pytest.raises(redis_hung):
        ratelimit.claim_ingest_wake()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, ORDER, **{"X-Shopify-Webhook-Id": "hung-1"})
    assert response.status_code == 200
    assert WebhookReceipt.objects.filter(dedupe_key="hung-1").exists()
