"""TikTok Shop through the pipeline, against its simulator over HTTP: what the contract
suite cannot express (signed requests, per-SKU errors inside ``code: 0``, business codes on
HTTP 200, the campaign split, order lookups, partial cancellations and returns (types 11
and 12) and the order poll)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence

import pytest
import requests
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channels import alerts as channel_alerts
from channels import services, tasks
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled
from channels.connectors.registry import get_connector
from channels.connectors.tiktok import client as tiktok_client
from channels.connectors.tiktok import webhooks
from channels.connectors.tiktok.connector import TikTokConnector
from channels.connectors.types import ListingRef, MessageKind, StockEffect, WebhookParseError
from channels.models import (
    Alert,
    Channel,
    ChannelAlert,
    DeadLetter,
    Listing,
    PendingPush,
    PushAttempt,
    WebhookReceipt,
)
from channels.pipeline import ingest, push, ratelimit, receive
from inventory.models import EventKind, InventoryEvent, StockLevel
from nventory import permissions
from tests import factories
from tests.channels.connectors.drivers import OpenChannel, TikTokDriver
from tests.channels.operators import make_operator
from tests.channels.tiktok_simulator import TikTokSimulatorClient


def _open(simulator: TikTokSimulatorClient, stock: Sequence[int]) -> OpenChannel:
    location = factories.make_location()
    skus = [factories.make_sku() for _ in stock]
    for sku, on_hand in zip(skus, stock, strict=True):
        factories.stock(sku, location, on_hand)
    return TikTokDriver(simulator).open_channel(skus=skus, location=location)


def _drain(opened: OpenChannel, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored: the assertions then see it not applied."""


def _refs(opened: OpenChannel) -> list[ListingRef]:
    return [
        ListingRef(listing.pk, listing.external_id, listing.extra_identifiers)
        for listing in opened.listings
    ]


@pytest.fixture(autouse=True)
def _fresh_tokens():
    tiktok_client.forget_tokens()


@pytest.mark.django_db
def test_a_code_zero_answer_with_two_failed_skus_dead_letters_those_two_only(tiktok_simulator):
    """One product, three SKUs: one not live, one the product lacks. The answer is
    ``code: 0`` with two per-SKU errors; those two are dead letters with TikTok's reason,
    the third is applied."""
    opened = _open(tiktok_simulator, (5,))
    product_id = opened.listings[0].extra_identifiers["product_id"]
    frozen_sku, missing_sku = factories.make_sku(), factories.make_sku()
    for sku in (frozen_sku, missing_sku):
        factories.stock(sku, opened.location, 3)
    tiktok_simulator.add_skus(
        opened.tenant, [{"sku_id": frozen_sku.code, "product_id": product_id, "status": "FROZEN"}]
    )
    frozen = factories.make_listing(
        channel=opened.channel,
        sku=frozen_sku,
        external_id=frozen_sku.code,
        extra_identifiers={"product_id": product_id},
    )
    missing = factories.make_listing(
        channel=opened.channel,
        sku=missing_sku,
        external_id="NOT-ON-TIKTOK",
        extra_identifiers={"product_id": product_id},
    )

    _drain(opened)

    updates = [
        call
        for call in tiktok_simulator.requests(opened.tenant)
        if call["endpoint"] == "inventory:update"
    ]
    assert [call["code"] for call in updates] == [0]
    assert (
        tiktok_simulator.skus(opened.tenant)[opened.listings[0].external_id]["available_quantity"]
        == 5
    )
    errors = {dead.listing_id: dead.attempts[0]["error"] for dead in DeadLetter.objects.all()}
    assert set(errors) == {frozen.pk, missing.pk}
    assert "FROZEN" in errors[frozen.pk] and "not found" in errors[missing.pk]


@pytest.mark.django_db
def test_the_body_sent_is_byte_for_byte_the_body_signed(tiktok_simulator):
    """The recorded request's raw body and parameters give the very sign it carried, and
    the simulator accepted it."""
    opened = _open(tiktok_simulator, (7, 8))
    _drain(opened)
    calls = [c for c in tiktok_simulator.requests(opened.tenant) if c["endpoint"]]
    assert calls and all(call["code"] == 0 for call in calls)
    secret = opened.channel.credentials["app_secret"]
    for call in calls:
        params = dict(call["params"])
        expected = tiktok_client.request_sign(
            secret=secret, path=call["path"], params=params, body=call["body"].encode()
        )
        assert params["sign"] == expected
        assert {"app_key", "timestamp", "shop_cipher"} <= set(params)
        assert call["headers"].get("x-tts-access-token")


@pytest.mark.django_db
def test_a_request_with_a_wrong_sign_is_refused_with_the_envelope(tiktok_simulator):
    """A body changed after signing: the simulator answers HTTP 200 and code 106001."""
    opened = _open(tiktok_simulator, (1,))
    credentials = opened.channel.credentials
    listing = opened.listings[0]
    signed = tiktok_client.sign_request(
        method="POST",
        path="/product/202309/inventory/search",
        params={},
        payload={"sku_ids": [listing.external_id]},
        app_key=credentials["app_key"],
        secret=credentials["app_secret"],
        shop_cipher=credentials["shop_cipher"],
        timestamp_s=int(time.time()),
    )
    response = requests.post(
        f"{tiktok_simulator.url}{signed.path}",
        params=dict(signed.params),
        data=signed.body.replace(b":[", b": ["),
        headers={"x-tts-access-token": "TTP_anything", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["code"] == 106001


@pytest.mark.django_db
def test_non_zero_business_codes_become_the_pipelines_errors(tiktok_simulator):
    """Every call refused on HTTP 200 with a non-zero code (a timestamp the simulator
    finds stale): as the rate-limit code, ChannelThrottled; as an auth code,
    ChannelAuthError; as any other, ChannelError."""
    opened = _open(tiktok_simulator, (1,))
    connector = get_connector(opened.channel)
    tiktok_simulator.update_shop(opened.tenant, timestamp_skew_s=-1)
    for code, error in (
        (36009003, ChannelThrottled),
        (106002, ChannelAuthError),
        (12345, tiktok_client.TikTokBusinessError),
    ):
        tiktok_simulator.update_shop(opened.tenant, codes={"invalid_timestamp": code})
        with pytest.raises(error) as raised:
            connector.read_quantities(_refs(opened))
        assert type(raised.value) is error and f"code {code}" in str(raised.value)
    assert issubclass(tiktok_client.TikTokBusinessError, ChannelError)


@pytest.mark.django_db
def test_an_expired_token_is_refreshed_once_and_the_write_applied(tiktok_simulator):
    """The platform refuses the token (401, 105002): one refresh, the same call again."""
    opened = _open(tiktok_simulator, (4,))
    tiktok_simulator.faults(opened.tenant, endpoint="write", expired_token_next=1)
    _drain(opened)
    assert (
        tiktok_simulator.skus(opened.tenant)[opened.listings[0].external_id]["available_quantity"]
        == 4
    )
    statuses = [
        call["status"]
        for call in tiktok_simulator.requests(opened.tenant)
        if call["endpoint"] == "inventory:update"
    ]
    assert statuses == [401, 200]


@pytest.mark.django_db
def test_a_429_holds_every_call_to_the_channel_for_its_retry_after(tiktok_simulator):
    """HTTP 429 with the rate-limit code and ``Retry-After: 30``: the items keep their
    tries, and no call reaches the shop again until the 30 s are over (the shared bucket
    holds them off); the write goes through after."""
    opened = _open(tiktok_simulator, (4,))
    tiktok_simulator.update_shop(opened.tenant, throttle_retry_after_s=30)
    tiktok_simulator.faults(opened.tenant, endpoint="write", throttle_next=1)

    def updates() -> list[int]:
        return [
            call["status"]
            for call in tiktok_simulator.requests(opened.tenant)
            if call["endpoint"] == "inventory:update"
        ]

    push.push_owed(channel_id=opened.channel.pk)
    [throttled] = PushAttempt.objects.filter(channel=opened.channel)
    assert throttled.outcome == PushAttempt.Outcome.THROTTLED and "36009003" in throttled.error
    push.push_owed(channel_id=opened.channel.pk)
    assert updates() == [429]
    assert PendingPush.objects.get(listing=opened.listings[0]).attempts == 0
    assert ratelimit.take(channel_id=opened.channel.pk, rate_per_s=1000) > 20

    ratelimit.reset(channel_id=opened.channel.pk)
    _drain(opened)
    assert updates() == [429, 200]
    assert (
        tiktok_simulator.skus(opened.tenant)[opened.listings[0].external_id]["available_quantity"]
        == 4
    )


@pytest.mark.django_db
def test_reads_compare_the_warehouse_figure_not_the_campaign_split(tiktok_simulator):
    """Of 12 units pushed, 2 are set aside for a campaign and 3 for creators: the channel
    still holds 12 (§4.4), which is what the connector reads."""
    opened = _open(tiktok_simulator, (12,))
    _drain(opened)
    listing = opened.listings[0]
    tiktok_simulator.add_skus(
        opened.tenant,
        [
            {
                "sku_id": listing.external_id,
                "product_id": listing.extra_identifiers["product_id"],
                "quantity": 12,
                "campaign_quantity": 2,
                "creator_quantity": 3,
            }
        ],
    )
    assert get_connector(opened.channel).read_quantities(_refs(opened)) == {listing.pk: 12}


@pytest.mark.django_db
def test_a_read_of_1201_skus_goes_in_searches_of_600_ids_at_most(tiktok_simulator):
    """§4.4: at most 600 ``sku_ids`` a search (the simulator refuses more): 1,201 listings
    are read in three searches, each SKU's own figure, one SKU the shop lacks read as
    none."""
    opened = _open(tiktok_simulator, (1,))
    count = 1201
    tiktok_simulator.add_skus(
        opened.tenant,
        [
            {"sku_id": f"BULK-{n}", "product_id": f"p-bulk-{n // 50}", "quantity": n % 97}
            for n in range(count - 1)
        ],
    )
    refs = [ListingRef(100_000 + n, f"BULK-{n}", {}) for n in range(count)]

    read = get_connector(opened.channel).read_quantities(refs)

    assert read == {100_000 + n: (n % 97 if n < count - 1 else None) for n in range(count)}
    searches = [
        call
        for call in tiktok_simulator.requests(opened.tenant)
        if call["endpoint"] == "inventory:search"
    ]
    assert [len(json.loads(call["body"])["sku_ids"]) for call in searches] == [600, 600, 1]
    assert {call["code"] for call in searches} == {0}


@pytest.mark.django_db
def test_a_sku_with_several_warehouses_is_written_and_read_at_the_channels_warehouse(
    tiktok_simulator,
):
    """``warehouse_id`` goes with every write of a SKU held in two warehouses (§4.3), and
    the read takes that warehouse's figure only."""
    opened = _open(tiktok_simulator, (6,))
    listing = opened.listings[0]
    tiktok_simulator.add_skus(
        opened.tenant,
        [
            {
                "sku_id": listing.external_id,
                "product_id": listing.extra_identifiers["product_id"],
                "warehouses": {"WH-A": 0, "WH-B": 40},
            }
        ],
    )
    opened.channel.platform_settings = {**opened.channel.platform_settings, "warehouse_id": "WH-A"}
    opened.channel.save(update_fields=["platform_settings"])
    _drain(opened)
    warehouses = tiktok_simulator.skus(opened.tenant)[listing.external_id]["warehouses"]
    assert (warehouses["WH-A"]["available"], warehouses["WH-B"]["available"]) == (6, 40)
    assert get_connector(opened.channel).read_quantities(_refs(opened)) == {listing.pk: 6}


@pytest.mark.django_db
def test_a_webhook_signed_with_another_secret_or_app_key_does_not_verify():
    """§4.1: the Authorization header is hex HMAC(app_secret, app_key + body)."""
    body = b'{"type": 1}'
    good = hmac.new(b"secret", b"key" + body, hashlib.sha256).hexdigest()
    assert webhooks.verify_tiktok_webhook(
        app_key="key", secret="secret", headers={"Authorization": good}, body=body
    )
    for app_key, secret, header in (
        ("other", "secret", good),
        ("key", "other", good),
        ("key", "secret", f"Bearer {good}"),
        ("key", "secret", ""),
    ):
        assert not webhooks.verify_tiktok_webhook(
            app_key=app_key, secret=secret, headers={"Authorization": header}, body=body
        )


@pytest.mark.django_db
def test_an_order_commits_at_its_first_status_and_its_later_statuses_change_nothing(
    tiktok_simulator,
):
    """An order announced at UNPAID, then AWAITING_SHIPMENT, IN_TRANSIT and DELIVERED, each
    a type 1 naming the order only: its units are committed at the first, once; a
    cancellation after all that is what releases them."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    order_id = tiktok_simulator.place_order(
        opened.tenant,
        [{"sku_id": listing.external_id, "quantity": 3}],
        status="UNPAID",
        deliver=False,
    )["order_id"]
    for status in ("AWAITING_SHIPMENT", "IN_TRANSIT", "DELIVERED"):
        tiktok_simulator.set_order_status(opened.tenant, order_id, status, deliver=False)
    _store_announced(opened, tiktok_simulator, 1)
    _ingest()
    assert _committed(opened) == [3]
    assert [
        e.delta_committed for e in InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED)
    ] == [3]
    statuses = [
        d["payload"]["data"]["order_status"]
        for d in tiktok_simulator.webhooks(opened.tenant)
        if d["payload"]["type"] == 1
    ]
    assert statuses == ["UNPAID", "AWAITING_SHIPMENT", "IN_TRANSIT", "DELIVERED"]
    assert WebhookReceipt.objects.filter(channel=opened.channel, status="processed").count() == 4

    tiktok_simulator.set_order_status(opened.tenant, order_id, "CANCELLED", deliver=False)
    _store_announced(opened, tiktok_simulator, 1)
    _ingest()
    assert _committed(opened) == [0]


@pytest.mark.django_db
def test_a_cancelled_order_fetches_its_lines_and_releases_the_units(tiktok_simulator):
    """Type 1 with CANCELLED names the order only: ingest fetches it and releases what the
    placed order committed."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    placed = tiktok_simulator.place_order(
        opened.tenant, [{"sku_id": listing.external_id, "quantity": 2}], deliver=False
    )
    connector = get_connector(opened.channel)
    for status in ("AWAITING_SHIPMENT", "CANCELLED"):
        if status == "CANCELLED":
            tiktok_simulator.set_order_status(opened.tenant, placed["order_id"], status)
        envelope = {
            "type": 1,
            "tts_notification_id": f"ntf-{status}",
            "data": {"order_id": placed["order_id"], "order_status": status},
        }
        body = json.dumps(envelope).encode()
        receive.record_receipt(
            channel_id=opened.channel.pk,
            topic=connector.webhook_envelope({}, body).topic,
            dedupe_key=f"ntf-{status}",
            headers={},
            body=body,
        )
        ingest.process_new_receipts(retry=_leave_for_later)
    moves = InventoryEvent.objects.filter(
        sku=listing.sku_id, kind__in=[EventKind.ORDER_COMMITTED, EventKind.ORDER_CANCELLED]
    ).order_by("pk")
    assert [(event.kind, event.delta_committed) for event in moves] == [
        (EventKind.ORDER_COMMITTED, 2),
        (EventKind.ORDER_CANCELLED, -2),
    ]
    assert WebhookReceipt.objects.filter(channel=opened.channel, status="processed").count() == 2
    assert connector.fetch_order(placed["order_id"]).kind == MessageKind.ORDER_CANCELLED


def _store_webhook(opened: OpenChannel, payload: dict, dedupe_key: str) -> None:
    body = json.dumps(payload).encode()
    receive.record_receipt(
        channel_id=opened.channel.pk,
        topic=get_connector(opened.channel).webhook_envelope({}, body).topic,
        dedupe_key=dedupe_key,
        headers={},
        body=body,
    )


@pytest.mark.django_db
def test_an_order_the_platform_auto_cancels_gives_its_committed_units_back(tiktok_simulator):
    """The platform cancels an order not shipped in time and announces it with a type 1
    CANCELLED webhook naming the order only; ingest fetches it and releases what it
    committed. An order shipped in time is left alone."""
    opened = _open(tiktok_simulator, (10,))
    tiktok_simulator.update_shop(opened.tenant, auto_cancel_after_s=1.5)
    _drain(opened)
    listing = opened.listings[0]
    late = tiktok_simulator.place_order(
        opened.tenant, [{"sku_id": listing.external_id, "quantity": 2}], deliver=False
    )["order_id"]
    shipped = tiktok_simulator.place_order(
        opened.tenant, [{"sku_id": listing.external_id, "quantity": 1}], deliver=False
    )["order_id"]
    tiktok_simulator.set_order_status(opened.tenant, shipped, "IN_TRANSIT", deliver=False)
    for order_id in (late, shipped):
        _store_webhook(
            opened,
            {
                "type": 1,
                "tts_notification_id": f"placed-{order_id}",
                "data": {"order_id": order_id, "order_status": "AWAITING_SHIPMENT"},
            },
            f"placed-{order_id}",
        )
    ingest.process_new_receipts(retry=_leave_for_later)

    deadline = time.monotonic() + 10
    while not (
        cancelled := [
            delivery["payload"]
            for delivery in tiktok_simulator.webhooks(opened.tenant)
            if delivery["payload"]["data"].get("order_status") == "CANCELLED"
        ]
    ):
        assert time.monotonic() < deadline, "the late order was never auto-cancelled"
        time.sleep(0.1)
    [announced] = cancelled
    assert announced["type"] == 1 and announced["data"]["order_id"] == late
    _store_webhook(opened, announced, announced["tts_notification_id"])
    ingest.process_new_receipts(retry=_leave_for_later)

    moves = InventoryEvent.objects.filter(
        sku=listing.sku_id, kind__in=[EventKind.ORDER_COMMITTED, EventKind.ORDER_CANCELLED]
    ).order_by("pk")
    assert [(event.external_reference, event.delta_committed) for event in moves] == [
        (late, 2),
        (shipped, 1),
        (late, -2),
    ]
    detail = _call_order_detail(opened, late)
    assert (detail["status"], detail["cancellation_initiator"]) == ("CANCELLED", "SYSTEM")
    assert _call_order_detail(opened, shipped)["status"] == "IN_TRANSIT"
    assert tiktok_simulator.skus(opened.tenant)[listing.external_id]["available_quantity"] == 9


def _call_order_detail(opened: OpenChannel, order_id: str) -> dict:
    connector = get_connector(opened.channel)
    assert isinstance(connector, TikTokConnector)
    [order] = connector.client.call("GET", "/order/202309/orders", params={"ids": order_id})[
        "orders"
    ]
    return order


@pytest.mark.django_db
def test_the_order_poll_stores_the_order_whose_webhook_never_came(tiktok_simulator):
    """An order whose webhook was lost comes in through the order search, lines and all:
    committed once, and a second poll stores nothing."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    lost = tiktok_simulator.place_order(
        opened.tenant, [{"sku_id": listing.external_id, "quantity": 3}], deliver=False
    )
    stored = receive.poll_orders(channel_id=opened.channel.pk)
    assert [WebhookReceipt.objects.get(pk=pk).dedupe_key for pk in stored] == [
        f"poll:{lost['order_id']}:AWAITING_SHIPMENT"
    ]
    for receipt_id in stored:
        ingest.process_receipt(receipt_id=receipt_id)
    assert receive.poll_orders(channel_id=opened.channel.pk) == []
    commits = InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED, sku=listing.sku_id)
    assert [event.delta_committed for event in commits] == [3]
    assert not [
        call
        for call in tiktok_simulator.requests(opened.tenant)
        if call["endpoint"] == "orders:get"
    ]


@pytest.mark.django_db
def test_the_order_poll_is_scheduled_and_wakes_the_tiktok_channel(tiktok_simulator):
    """Beat runs ``channels.wake_order_polls`` every 5 minutes; it queues a poll of the
    active TikTok Shop channel (not of a paused one), and that poll's task stores the order
    whose webhook never came."""
    schedule = PeriodicTask.objects.get(name="Poll recent orders")
    assert (schedule.task, schedule.enabled, schedule.interval.every) == (
        "channels.wake_order_polls",
        True,
        300,
    )
    opened = _open(tiktok_simulator, (10,))
    paused = _open(tiktok_simulator, (10,))
    Channel.objects.filter(pk=paused.channel.pk).update(mode=Channel.Mode.PAUSED)
    assert receive.wake_order_polls() == 1
    _drain(opened)
    lost = tiktok_simulator.place_order(
        opened.tenant, [{"sku_id": opened.listings[0].external_id, "quantity": 2}], deliver=False
    )
    assert tasks.poll_orders(opened.channel.pk) == 1
    assert WebhookReceipt.objects.filter(
        channel=opened.channel, dedupe_key=f"poll:{lost['order_id']}:AWAITING_SHIPMENT"
    ).exists()


@pytest.mark.django_db
def test_a_seller_deauthorization_pauses_the_channel_and_an_expiry_notice_does_not(
    tiktok_simulator,
):
    """Type 7 opens an alert for an operator and the channel keeps pushing; type 6 opens
    another and pauses the channel: a stock change made then is held, not sent and not
    failed, and goes out once an operator sets the channel active again. (The deliveries
    are stored as the receiver stores them, and ingested here: no worker of another test
    takes them.)"""
    opened = _open(tiktok_simulator, (3,))
    _drain(opened)
    connector = get_connector(opened.channel)
    listing = opened.listings[0]
    assert listing.sku is not None

    def receive_and_ingest(kind: int) -> None:
        webhook_id = tiktok_simulator.notify(opened.tenant, kind)["webhook_id"]
        [delivery] = [
            d for d in tiktok_simulator.webhooks(opened.tenant) if d["webhook_id"] == webhook_id
        ]
        body = json.dumps(delivery["payload"]).encode()
        assert connector.verify_webhook(delivery["headers"], body)
        envelope = connector.webhook_envelope(delivery["headers"], body)
        receive.record_receipt(
            channel_id=opened.channel.pk,
            topic=envelope.topic,
            dedupe_key=envelope.dedupe_key,
            headers=connector.kept_webhook_headers(delivery["headers"]),
            body=body,
        )
        ingest.process_new_receipts(retry=_leave_for_later)

    def open_alerts() -> dict[str, str]:
        return dict(
            ChannelAlert.objects.filter(
                channel=opened.channel, resolved_at__isnull=True
            ).values_list("kind", "message")
        )

    receive_and_ingest(7)
    opened.channel.refresh_from_db()
    assert opened.channel.mode == Channel.Mode.ACTIVE
    assert list(open_alerts()) == [ChannelAlert.Kind.AUTHORIZATION_EXPIRING]
    assert "ends soon" in open_alerts()[ChannelAlert.Kind.AUTHORIZATION_EXPIRING]
    factories.stock(listing.sku, opened.location, 2)
    _drain(opened)
    assert tiktok_simulator.skus(opened.tenant)[listing.external_id]["available_quantity"] == 5

    receive_and_ingest(6)
    opened.channel.refresh_from_db()
    assert opened.channel.mode == Channel.Mode.PAUSED
    assert set(open_alerts()) == {
        ChannelAlert.Kind.AUTHORIZATION_EXPIRING,
        ChannelAlert.Kind.AUTHORIZATION_REVOKED,
    }
    assert "paused" in open_alerts()[ChannelAlert.Kind.AUTHORIZATION_REVOKED]
    assert {condition.kind for condition in channel_alerts.channel_alert_open(timezone.now())} == {
        Alert.Kind.CHANNEL_ALERT
    }

    attempts_before = PushAttempt.objects.filter(channel=opened.channel).count()
    factories.stock(listing.sku, opened.location, 4)
    push.push_owed(channel_id=opened.channel.pk)
    assert PendingPush.objects.filter(listing=listing).exists()
    assert PushAttempt.objects.filter(channel=opened.channel).count() == attempts_before
    assert not DeadLetter.objects.filter(channel=opened.channel).exists()
    assert tiktok_simulator.skus(opened.tenant)[listing.external_id]["available_quantity"] == 5

    services.switch_channel_mode(
        actor=make_operator(permissions.MANAGE_CHANNELS),
        channel_id=opened.channel.pk,
        mode=Channel.Mode.ACTIVE,
    )
    _drain(opened)
    assert tiktok_simulator.skus(opened.tenant)[listing.external_id]["available_quantity"] == 9


def _ingest() -> None:
    ingest.process_new_receipts(retry=_leave_for_later)


def _committed(opened: OpenChannel) -> list[int]:
    """The master's committed units of each listing's SKU, in listing order."""
    return [_level(opened, listing).committed for listing in opened.listings]


def _level(opened: OpenChannel, listing: Listing) -> StockLevel:
    assert listing.sku_id is not None
    return StockLevel.objects.get(sku_id=listing.sku_id, location=opened.location)


def _store_announced(opened: OpenChannel, simulator: TikTokSimulatorClient, kind: int) -> None:
    """Store every signed delivery of that type the simulator sent (or kept undelivered)
    as the receiver would: verified, deduplicated on ``tts_notification_id``."""
    connector = get_connector(opened.channel)
    for delivery in simulator.webhooks(opened.tenant):
        if delivery["payload"]["type"] != kind:
            continue
        body = json.dumps(delivery["payload"]).encode()
        assert connector.verify_webhook(delivery["headers"], body)
        envelope = connector.webhook_envelope(delivery["headers"], body)
        receive.record_receipt(
            channel_id=opened.channel.pk,
            topic=envelope.topic,
            dedupe_key=envelope.dedupe_key,
            headers=connector.kept_webhook_headers(delivery["headers"]),
            body=body,
        )


def _place_and_ingest(
    opened: OpenChannel, simulator: TikTokSimulatorClient, units: Sequence[int]
) -> str:
    """An order of ``units[i]`` of listing i, its type 1 webhook stored and ingested."""
    order_id = simulator.place_order(
        opened.tenant,
        [
            {"sku_id": listing.external_id, "quantity": quantity}
            for listing, quantity in zip(opened.listings, units, strict=True)
        ],
        deliver=False,
    )["order_id"]
    _store_announced(opened, simulator, 1)
    _ingest()
    return str(order_id)


@pytest.mark.django_db(transaction=True)
def test_an_order_webhook_whose_lines_are_fetched_and_a_partial_cancellation_of_it(
    tiktok_simulator, live_server
):
    """Over real HTTP: the type 1 webhook names the order only and ingest fetches its lines
    (3 of A, 2 of B: 5 committed). A type 11 granting the cancellation of 1 of A, delivered
    three times, is stored once; ingest searches its line items and releases that unit
    only (4 committed), B untouched. The same cancellation announced again under a new
    notification id releases nothing more, and the shop's figure follows the master's."""
    location = factories.make_location()
    skus = [factories.make_sku(), factories.make_sku()]
    for sku in skus:
        factories.stock(sku, location, 10)
    opened = TikTokDriver(tiktok_simulator).open_channel(
        skus=skus, location=location, receiver_url=live_server.url
    )
    _drain(opened)
    a, b = opened.listings
    order_id = tiktok_simulator.place_order(
        opened.tenant,
        [{"sku_id": a.external_id, "quantity": 3}, {"sku_id": b.external_id, "quantity": 2}],
    )["order_id"]
    _ingest()
    assert _committed(opened) == [3, 2]
    fetched = [
        call
        for call in tiktok_simulator.requests(opened.tenant)
        if call["endpoint"] == "orders:get"
    ]
    assert len(fetched) == 1

    cancelled = tiktok_simulator.cancel_lines(
        opened.tenant, order_id, [{"sku_id": a.external_id, "quantity": 1}], duplicates=2
    )
    receipts = WebhookReceipt.objects.filter(
        channel=opened.channel, topic="CANCELLATION_STATUS_CHANGE"
    )
    assert receipts.count() == 1
    _ingest()
    assert _committed(opened) == [2, 2]
    assert sum(_committed(opened)) == 4
    [release] = InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED)
    assert (release.sku_id, release.delta_committed) == (a.sku_id, -1)
    assert release.idempotency_key.endswith(
        f":refund:cancel:{cancelled['cancel_id']}:line:{a.external_id}"
    )

    [announced] = [
        d["payload"]
        for d in tiktok_simulator.webhooks(opened.tenant)
        if d["payload"]["type"] == 11
    ]
    _store_webhook(opened, announced | {"tts_notification_id": "resent-11"}, "resent-11")
    _ingest()
    assert _committed(opened) == [2, 2]
    assert InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED).count() == 1
    assert set(receipts.values_list("status", flat=True)) == {"processed"}

    _drain(opened)
    on_channel = tiktok_simulator.skus(opened.tenant)
    assert on_channel[a.external_id]["available_quantity"] == 8
    assert on_channel[b.external_id]["available_quantity"] == 8


@pytest.mark.django_db
def test_a_pending_cancellation_changes_nothing_and_its_grant_releases_once(tiktok_simulator):
    """Type 11 at CANCELLATION_REQUEST_PENDING moves no stock; granted later, the units are
    released once, whichever of its announcements is ingested again; a withdrawn request
    releases nothing."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    order_id = _place_and_ingest(opened, tiktok_simulator, (3,))
    assert _committed(opened) == [3]

    pending = tiktok_simulator.cancel_lines(
        opened.tenant,
        order_id,
        [{"sku_id": listing.external_id, "quantity": 2}],
        status="CANCELLATION_REQUEST_PENDING",
        deliver=False,
    )
    withdrawn = tiktok_simulator.cancel_lines(
        opened.tenant,
        order_id,
        [{"sku_id": listing.external_id, "quantity": 1}],
        status="CANCELLATION_REQUEST_PENDING",
        deliver=False,
    )
    _store_announced(opened, tiktok_simulator, 11)
    _ingest()
    assert _committed(opened) == [3]
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED).exists()

    tiktok_simulator.advance(
        opened.tenant,
        "cancellations",
        withdrawn["cancel_id"],
        "CANCELLATION_REQUEST_CANCEL",
        deliver=False,
    )
    tiktok_simulator.advance(
        opened.tenant,
        "cancellations",
        pending["cancel_id"],
        "CANCELLATION_REQUEST_SUCCESS",
        deliver=False,
    )
    _store_announced(opened, tiktok_simulator, 11)
    _ingest()
    assert _committed(opened) == [1]
    # The pending announcement, delivered again now, reads the grant: nothing more.
    [first] = [
        d["payload"]
        for d in tiktok_simulator.webhooks(opened.tenant)
        if d["payload"]["type"] == 11 and d["payload"]["data"]["cancel_id"] == pending["cancel_id"]
    ][:1]
    _store_webhook(opened, first | {"tts_notification_id": "late-pending"}, "late-pending")
    _ingest()
    assert _committed(opened) == [1]
    assert [
        e.delta_committed for e in InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED)
    ] == [-2]


@pytest.mark.django_db
def test_a_completed_return_of_the_goods_puts_the_units_back_and_a_refund_only_does_not(
    tiktok_simulator,
):
    """Type 12: a RETURN_AND_REFUND return is nothing until complete, and then restocks its
    unit once (announced at each status, one announcement delivered again); a REFUND (money
    only) completed moves no stock."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    order_id = _place_and_ingest(opened, tiktok_simulator, (2,))
    tiktok_simulator.set_order_status(opened.tenant, order_id, "DELIVERED", deliver=False)
    goods = tiktok_simulator.open_return(
        opened.tenant,
        order_id,
        [{"sku_id": listing.external_id, "quantity": 1}],
        return_type="RETURN_AND_REFUND",
        deliver=False,
    )
    _store_announced(opened, tiktok_simulator, 12)
    _ingest()
    assert not InventoryEvent.objects.filter(kind=EventKind.RETURN_RESTOCKED).exists()
    for status in (
        "AWAITING_BUYER_SHIP",
        "BUYER_SHIPPED_ITEM",
        "RETURN_OR_REFUND_REQUEST_COMPLETE",
    ):
        tiktok_simulator.advance(
            opened.tenant, "returns", goods["return_id"], status, deliver=False
        )
    tiktok_simulator.open_return(
        opened.tenant,
        order_id,
        [{"sku_id": listing.external_id, "quantity": 1}],
        return_type="REFUND",
        status="RETURN_OR_REFUND_REQUEST_COMPLETE",
        deliver=False,
    )
    _store_announced(opened, tiktok_simulator, 12)
    last = tiktok_simulator.webhooks(opened.tenant)[-2]["payload"]
    _store_webhook(opened, last | {"tts_notification_id": "again-12"}, "again-12")
    _ingest()
    [restocked] = InventoryEvent.objects.filter(kind=EventKind.RETURN_RESTOCKED)
    assert (restocked.sku_id, restocked.delta_on_hand) == (listing.sku_id, 1)
    level = _level(opened, listing)
    assert (level.on_hand, level.committed) == (11, 2)
    assert (
        not WebhookReceipt.objects.filter(channel=opened.channel)
        .exclude(status="processed")
        .exists()
    )


@pytest.mark.django_db
def test_the_order_poll_and_the_webhook_release_a_partial_cancellation_once(tiktok_simulator):
    """A partial cancellation whose type 11 was lost: the order poll sees the order's line
    item cancelled, searches its cancellations and releases the unit; the webhook arriving
    after all, and the next poll, release nothing more."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    order_id = _place_and_ingest(opened, tiktok_simulator, (3,))
    cancelled = tiktok_simulator.cancel_lines(
        opened.tenant, order_id, [{"sku_id": listing.external_id, "quantity": 1}], deliver=False
    )
    stored = receive.poll_orders(channel_id=opened.channel.pk)
    assert f"poll:cancel:{cancelled['cancel_id']}:CANCELLATION_REQUEST_SUCCESS" in set(
        WebhookReceipt.objects.filter(pk__in=stored).values_list("dedupe_key", flat=True)
    )
    for receipt_id in stored:
        ingest.process_receipt(receipt_id=receipt_id)
    assert _committed(opened) == [2]

    _store_announced(opened, tiktok_simulator, 11)
    _ingest()
    assert receive.poll_orders(channel_id=opened.channel.pk) == []
    _ingest()
    assert _committed(opened) == [2]
    assert InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED).count() == 1
    assert InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).count() == 1
    assert (
        WebhookReceipt.objects.filter(
            channel=opened.channel, topic="CANCELLATION_STATUS_CHANGE"
        ).count()
        == 2
    )


@pytest.mark.django_db
def test_cancelling_the_rest_of_a_partly_cancelled_order_releases_only_what_is_left(
    tiktok_simulator,
):
    """After 1 of 3 units was cancelled (type 11), the whole order's cancellation (type 1
    CANCELLED, its fetched lines still counting 3) releases the 2 left: never 3."""
    opened = _open(tiktok_simulator, (10,))
    _drain(opened)
    listing = opened.listings[0]
    order_id = _place_and_ingest(opened, tiktok_simulator, (3,))
    tiktok_simulator.cancel_lines(
        opened.tenant, order_id, [{"sku_id": listing.external_id, "quantity": 1}], deliver=False
    )
    tiktok_simulator.set_order_status(opened.tenant, order_id, "CANCELLED", deliver=False)
    _store_announced(opened, tiktok_simulator, 11)
    _store_announced(opened, tiktok_simulator, 1)
    _ingest()
    assert _committed(opened) == [0]
    assert sorted(
        e.delta_committed for e in InventoryEvent.objects.filter(kind=EventKind.ORDER_CANCELLED)
    ) == [-2, -1]


def _event(kind: int, data: dict) -> bytes:
    return json.dumps({"type": kind, "tts_notification_id": "n-1", "data": data}).encode()


def test_cancellation_and_return_events_parse_as_refunds_of_their_order():
    """Types 11 and 12 name the order, and the cancellation or return as the refund's own
    reference; without line items (a webhook) they carry no lines, for ingest to fetch;
    with them (a polled cancellation, a search answer) each SKU's units count, with what
    the status does to stock. An event naming no cancel or return id is unreadable."""
    webhook = webhooks.parse_tiktok_webhook(
        "CANCELLATION_STATUS_CHANGE",
        _event(
            11,
            {"order_id": "O1", "cancel_id": "C1", "cancel_status": "CANCELLATION_REQUEST_SUCCESS"},
        ),
    )
    assert (webhook.kind, webhook.reference, webhook.sub_reference, webhook.lines) == (
        MessageKind.REFUND,
        "O1",
        "cancel:C1",
        (),
    )
    items = [
        {"order_line_item_id": "L1", "sku_id": "A", "seller_sku": "SA"},
        {"order_line_item_id": "L2", "sku_id": "A", "seller_sku": "SA"},
        {"order_line_item_id": "L3", "sku_id": "B", "seller_sku": "SB"},
    ]
    effects = {
        "CANCELLATION_REQUEST_PENDING": StockEffect.NONE,
        "CANCELLATION_REQUEST_SUCCESS": StockEffect.RELEASE,
        "CANCELLATION_REQUEST_CANCEL": StockEffect.NONE,
    }
    for status, effect in effects.items():
        message = webhooks.cancellation_message(
            {
                "order_id": "O1",
                "cancel_id": "C1",
                "cancel_status": status,
                "cancel_line_items": items,
            }
        )
        assert [(line.reference, line.quantity, line.stock_effect) for line in message.lines] == [
            ("A", 2, effect),
            ("B", 1, effect),
        ]
    returns = {
        ("RETURN_OR_REFUND_REQUEST_COMPLETE", "RETURN_AND_REFUND"): StockEffect.RETURN,
        ("BUYER_SHIPPED_ITEM", "RETURN_AND_REFUND"): StockEffect.NONE,
        ("RETURN_OR_REFUND_REQUEST_COMPLETE", "REFUND"): StockEffect.NONE,
        ("RETURN_OR_REFUND_REQUEST_COMPLETE", "REFUND_ONLY"): StockEffect.NONE,
    }
    for (status, return_type), effect in returns.items():
        message = webhooks.return_message(
            {
                "order_id": "O1",
                "return_id": "R1",
                "return_status": status,
                "return_type": return_type,
                "return_line_items": items[:1],
            }
        )
        assert message.sub_reference == "return:R1"
        assert [line.stock_effect for line in message.lines] == [effect]
    for kind, data in ((11, {"order_id": "O1"}), (12, {"order_id": "O1", "return_id": ""})):
        with pytest.raises(WebhookParseError):
            webhooks.parse_tiktok_webhook("", _event(kind, data))
