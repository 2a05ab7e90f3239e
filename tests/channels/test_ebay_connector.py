"""eBay through the connector and the pipeline, against its simulator over HTTP: what the
contract suite cannot express (25 entries a call, a 207's failed entries, the daily revision
cap, tokens expiring, the notification signature, the order poll)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence

import pytest

from channels.connectors.ebay import webhooks
from channels.connectors.ebay.connector import EbayConnector
from channels.connectors.registry import get_connector
from channels.connectors.types import ItemStatus, ListingRef, MessageKind, QuantityUpdate
from channels.models import DeadLetter, PendingPush, PushAttempt
from channels.pipeline import push, receive
from tests import factories
from tests.channels.connectors.drivers import EbayDriver, OpenChannel
from tests.channels.ebay_simulator import EbaySimulatorClient

BULK_PATH = "/sell/inventory/v1/bulk_update_price_quantity"


def _open(simulator: EbaySimulatorClient, stock: Sequence[int]) -> OpenChannel:
    location = factories.make_location()
    skus = [factories.make_sku() for _ in stock]
    for sku, on_hand in zip(skus, stock, strict=True):
        factories.stock(sku, location, on_hand)
    return EbayDriver(simulator).open_channel(skus=skus, location=location)


def _drain(opened: OpenChannel, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


def _bulk_calls(simulator: EbaySimulatorClient, opened: OpenChannel) -> list[dict]:
    return [r for r in simulator.requests(opened.tenant) if r.get("api_path") == BULK_PATH]


def _updates(opened: OpenChannel, quantity: int) -> list[QuantityUpdate]:
    return [
        QuantityUpdate(
            listing_id=listing.pk,
            external_id=listing.external_id,
            quantity=quantity,
            compare_quantity=None,
            idempotency_key=f"k-{listing.pk}-{quantity}",
            extra_identifiers=listing.extra_identifiers,
        )
        for listing in opened.listings
    ]


@pytest.mark.django_db
def test_sixty_changed_listings_go_out_in_three_calls(ebay_simulator):
    """§5.2: at most 25 requests a call, so 60 listings take 25 + 25 + 10."""
    opened = _open(ebay_simulator, [5] * 60)
    _drain(opened)
    calls = _bulk_calls(ebay_simulator, opened)
    assert [len(json.loads(c["body"])["requests"]) for c in calls] == [25, 25, 10]
    assert {item["listed"] for item in ebay_simulator.items(opened.tenant).values()} == {5}


@pytest.mark.django_db
def test_a_partial_answer_dead_letters_only_its_two_failed_entries(ebay_simulator):
    """A 207 is a partial success: the two entries eBay refused (offers not published) are
    dead letters with eBay's reason, the other three applied."""
    opened = _open(ebay_simulator, [1, 2, 3, 4, 5])
    for listing in opened.listings[:2]:
        [item] = ebay_simulator.add_items(
            opened.tenant, [{"sku": listing.external_id, "status": "UNPUBLISHED"}]
        )
        listing.extra_identifiers = {"offer_ids": [item["offer_id"]]}
        listing.save(update_fields=["extra_identifiers"])
    _drain(opened)
    assert [c["status"] for c in _bulk_calls(ebay_simulator, opened)] == [207]
    dead = DeadLetter.objects.filter(listing__in=opened.listings)
    assert {d.listing_id for d in dead} == {listing.pk for listing in opened.listings[:2]}
    items = ebay_simulator.items(opened.tenant)
    assert [items[listing.external_id]["listed"] for listing in opened.listings[2:]] == [3, 4, 5]


@pytest.mark.django_db
def test_a_listing_at_its_daily_revision_cap_is_held_with_a_clear_reason(ebay_simulator):
    """eBay refuses a listing's revision past its daily cap: the entry is refused with a
    message saying it is held until the next day, not retried into errors."""
    opened = _open(ebay_simulator, [4])
    ebay_simulator.update_seller(opened.tenant, revision_cap=1)
    connector = get_connector(opened.channel)
    assert [r.status for r in connector.push_quantities(_updates(opened, 4))] == [
        ItemStatus.APPLIED
    ]
    [result] = connector.push_quantities(_updates(opened, 3))
    assert result.status == ItemStatus.HELD and "Held" in result.error
    assert result.hold_until is not None and result.hold_until.time() == dt.time()
    assert ebay_simulator.items(opened.tenant)[opened.listings[0].external_id]["listed"] == 4


@pytest.mark.django_db
def test_the_connector_counts_revisions_and_holds_a_listing_at_the_cap_without_a_call(
    ebay_simulator,
):
    """At the channel's own count of the day's revisions, no call is spent on the listing."""
    opened = _open(ebay_simulator, [4])
    opened.channel.platform_settings = {**opened.channel.platform_settings, "revision_cap": 1}
    opened.channel.save(update_fields=["platform_settings"])
    connector = get_connector(opened.channel)
    connector.push_quantities(_updates(opened, 4))
    calls_before = len(_bulk_calls(ebay_simulator, opened))
    [result] = connector.push_quantities(_updates(opened, 2))
    assert result.status == ItemStatus.HELD and "Held" in result.error
    assert len(_bulk_calls(ebay_simulator, opened)) == calls_before


@pytest.mark.django_db
def test_the_last_revision_of_the_day_is_kept_for_a_sell_out(ebay_simulator):
    """With one revision left, a new positive figure waits for tomorrow but a sell-out
    (0) still goes out: buyers must not buy what is gone."""
    opened = _open(ebay_simulator, [4])
    opened.channel.platform_settings = {**opened.channel.platform_settings, "revision_cap": 2}
    opened.channel.save(update_fields=["platform_settings"])
    connector = get_connector(opened.channel)
    connector.push_quantities(_updates(opened, 4))
    [held] = connector.push_quantities(_updates(opened, 3))
    assert held.status == ItemStatus.HELD
    [sold_out] = connector.push_quantities(_updates(opened, 0))
    assert sold_out.status == ItemStatus.APPLIED
    assert ebay_simulator.items(opened.tenant)[opened.listings[0].external_id]["listed"] == 0


@pytest.mark.django_db
def test_near_the_cap_a_listings_writes_are_spaced_to_last_the_day(ebay_simulator):
    """In the last fifth of its revisions a listing's changes wait for the spacing that
    makes what is left last until midnight (so they coalesce), checked again within a
    minute; a sell-out is not spaced."""
    opened = _open(ebay_simulator, [4])
    opened.channel.platform_settings = {**opened.channel.platform_settings, "revision_cap": 10}
    opened.channel.save(update_fields=["platform_settings"])
    connector = get_connector(opened.channel)
    assert isinstance(connector, EbayConnector)
    for quantity in range(8, 0, -1):
        [result] = connector.push_quantities(_updates(opened, quantity + 10))
        assert result.status == ItemStatus.APPLIED
    assert connector.revisions_today(opened.listings[0].pk) == 8
    [spaced] = connector.push_quantities(_updates(opened, 5))
    assert spaced.status == ItemStatus.HELD and spaced.error.startswith("Spaced")
    assert spaced.hold_until is not None
    assert spaced.hold_until - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=61)
    [sold_out] = connector.push_quantities(_updates(opened, 0))
    assert sold_out.status == ItemStatus.APPLIED


@pytest.mark.django_db
def test_an_expired_token_is_refreshed_and_the_call_goes_through(ebay_simulator):
    """§5.5: past its lifetime the token draws 401 errorId 1001; a fresh one is fetched
    with the refresh token and the write applied."""
    opened = _open(ebay_simulator, [6])
    _drain(opened)
    ebay_simulator.clock(advance_s=7300)
    try:
        connector = get_connector(opened.channel)
        assert [r.status for r in connector.push_quantities(_updates(opened, 2))] == [
            ItemStatus.APPLIED
        ]
        statuses = [r["status"] for r in ebay_simulator.requests(opened.tenant)]
        assert 401 in statuses
        assert ebay_simulator.items(opened.tenant)[opened.listings[0].external_id]["listed"] == 2
    finally:
        # The clock only moves forward: notifications signed two hours ahead would be
        # refused by every later test's receiver (WEBHOOK_TIMESTAMP_TOLERANCE_S).
        ebay_simulator.reset()


@pytest.mark.django_db
def test_reads_compare_the_smaller_of_item_and_offer_quantities(ebay_simulator):
    """§5.2: a buyer sees min(item, offer); an offer left lower is what the read reports."""
    opened = _open(ebay_simulator, [1])
    listing = opened.listings[0]
    ebay_simulator.add_items(
        opened.tenant, [{"sku": listing.external_id, "quantity": 9, "offer_quantity": 4}]
    )
    read = EbayConnector(opened.channel).read_quantities(
        [ListingRef(listing.pk, listing.external_id, listing.extra_identifiers)]
    )
    assert read == {listing.pk: 4}


@pytest.mark.django_db
def test_the_order_poll_finds_an_order_whose_notification_never_came(ebay_simulator):
    """§5.1: the Fulfillment API's orders are the backup for Platform Notifications."""
    opened = _open(ebay_simulator, [5])
    listing = opened.listings[0]
    answer = ebay_simulator.place_order(
        opened.tenant, [{"sku": listing.external_id, "quantity": 2}], deliver=False
    )
    stored = receive.poll_orders(channel_id=opened.channel.pk)
    assert stored
    events = get_connector(opened.channel).poll_orders(
        since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    message = get_connector(opened.channel).parse_webhook(events[0].topic, events[0].body)
    assert message.kind == MessageKind.ORDER_PLACED
    assert message.reference == answer["line_item_ids"][0]
    assert message.lines[0].identifiers["sku"] == listing.external_id


def test_a_wrong_notification_signature_is_refused():
    """§5.1: base64(md5(Timestamp + DevID + AppID + CertID)); another CertID fails."""
    timestamp = "2026-12-01T10:00:00.000Z"
    good = webhooks.signature(timestamp, dev_id="d", app_id="a", cert_id="c")
    body = _notification(timestamp, good)
    assert webhooks.verify_platform_notification(body=body, dev_id="d", app_id="a", cert_id="c")
    assert not webhooks.verify_platform_notification(
        body=body, dev_id="d", app_id="a", cert_id="other"
    )
    assert not webhooks.verify_platform_notification(
        body=_notification(timestamp, "AAAA"), dev_id="d", app_id="a", cert_id="c"
    )


def test_an_entity_expansion_bomb_is_refused_before_any_expansion():
    """A body declaring entities is refused unparsed, whatever its encoding."""
    entities = "".join(
        f'<!ENTITY e{n} "{"".join(f"&e{n - 1};" for _ in range(10))}">' for n in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e0 "lol">{entities}]><x>&e9;</x>'
    for encoding in ("utf-8", "utf-16"):
        body = bomb.replace('"1.0"', f'"1.0" encoding="{encoding}"').encode(encoding)
        assert not webhooks.verify_platform_notification(
            body=body, dev_id="d", app_id="a", cert_id="c"
        )
        with pytest.raises(webhooks.WebhookParseError):
            webhooks.parse_xml(body)


def _notification(timestamp: str, signature: str) -> bytes:
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
