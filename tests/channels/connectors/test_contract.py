"""The contract every connector keeps, run against its platform's simulator over HTTP.

Parametrized over ``channels.connectors.registry.CONNECTORS``: a platform with a
connector and no driver in ``DRIVER_FACTORIES`` fails here, so none joins untested. The
pipeline runs in this process (``push.push_owed``, ``ingest.process_new_receipts``) as
its Celery tasks would; webhooks reach the receiver over real HTTP (``live_server``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.utils import timezone

from channels.connectors.registry import CONNECTORS, get_connector
from channels.connectors.types import Capability, ListingRef
from channels.models import DeadLetter, PendingPush, PushAttempt, WebhookReceipt
from channels.pipeline import ingest, push
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.connectors.drivers import (
    AmazonDriver,
    EbayDriver,
    OpenChannel,
    PlatformDriver,
    ShopifyDriver,
    TikTokDriver,
    WalmartDriver,
)

DRIVER_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], PlatformDriver]] = {
    "shopify": lambda request: ShopifyDriver(request.getfixturevalue("shopify_simulator")),
    "walmart": lambda request: WalmartDriver(request.getfixturevalue("walmart_simulator")),
    "amazon": lambda request: AmazonDriver(
        request.getfixturevalue("amazon_simulator"), request.getfixturevalue("sqs_server")
    ),
    "ebay": lambda request: EbayDriver(request.getfixturevalue("ebay_simulator")),
    "tiktok": lambda request: TikTokDriver(request.getfixturevalue("tiktok_simulator")),
}

STOCK = (10, 20, 30)


def test_every_registered_connector_has_a_contract_driver():
    """A connector without a driver would skip the contract: it must not be offered."""
    assert set(CONNECTORS) <= set(DRIVER_FACTORIES)


@pytest.fixture(params=sorted(CONNECTORS))
def driver(request: pytest.FixtureRequest) -> PlatformDriver:
    return DRIVER_FACTORIES[request.param](request)


def _open(driver: PlatformDriver) -> OpenChannel:
    """A channel of three listings, their SKUs stocked 10, 20 and 30."""
    location = factories.make_location()
    skus = [factories.make_sku() for _ in STOCK]
    for sku, on_hand in zip(skus, STOCK, strict=True):
        factories.stock(sku, location, on_hand)
    return driver.open_channel(skus=skus, location=location)


def _drain(opened: OpenChannel, timeout_s: float = 15) -> None:
    """Run the pusher until the channel owes nothing (backoffs and hold-offs included)."""
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored: the assertions then see it not applied."""


def _ingest_all() -> None:
    ingest.process_new_receipts(retry=_leave_for_later)


@pytest.mark.django_db
def test_a_pushed_batch_reads_back_as_sent(driver):
    """Every listing's master figure reaches the platform, and the connector reads it back."""
    opened = _open(driver)
    _drain(opened)
    for listing, on_hand in zip(opened.listings, STOCK, strict=True):
        assert driver.quantity_on_channel(opened, listing) == on_hand
    read = get_connector(opened.channel).read_quantities(
        [
            ListingRef(listing.pk, listing.external_id, listing.extra_identifiers)
            for listing in opened.listings
        ]
    )
    assert read == {
        listing.pk: on_hand for listing, on_hand in zip(opened.listings, STOCK, strict=True)
    }


@pytest.mark.django_db
def test_the_platforms_throttle_signal_holds_the_push_and_counts_no_attempt(driver):
    """Throttled: the items keep every try, and go through once the platform lets them."""
    opened = _open(driver)
    driver.throttle_next_call(opened)
    push.push_owed(channel_id=opened.channel.pk)
    assert PushAttempt.objects.filter(
        channel=opened.channel, outcome=PushAttempt.Outcome.THROTTLED
    ).exists()
    assert set(
        PendingPush.objects.filter(channel=opened.channel).values_list("attempts", flat=True)
    ) == {0}
    _drain(opened)
    assert driver.quantity_on_channel(opened, opened.listings[0]) == STOCK[0]


@pytest.mark.django_db
def test_a_call_that_fails_on_the_platform_is_retried_and_then_applied(driver):
    """A 5xx is a failed attempt of every item in the call; the retry applies them."""
    opened = _open(driver)
    driver.fail_next_call(opened, status=503)
    push.push_owed(channel_id=opened.channel.pk)
    assert PushAttempt.objects.filter(
        channel=opened.channel, outcome=PushAttempt.Outcome.FAILED
    ).count() == len(STOCK)
    assert set(
        PendingPush.objects.filter(channel=opened.channel).values_list("attempts", flat=True)
    ) == {1}
    _drain(opened)
    assert [driver.quantity_on_channel(opened, listing) for listing in opened.listings] == list(
        STOCK
    )


@pytest.mark.django_db
def test_a_write_answered_too_late_is_retried_without_applying_it_twice(driver):
    """The platform applied the write but the answer came after the client gave up: the
    retry carries the same idempotency key (or is absolute), so the item ends right and,
    where the platform honours keys, written once."""
    opened = _open(driver)
    driver.time_out_next_call_after_applying(opened)
    push.push_owed(channel_id=opened.channel.pk)
    assert PushAttempt.objects.filter(
        channel=opened.channel,
        outcome=PushAttempt.Outcome.FAILED,
        error__contains="did not answer",
    ).exists()
    _drain(opened)
    listing = opened.listings[0]
    assert driver.quantity_on_channel(opened, listing) == STOCK[0]
    if get_connector(opened.channel).has(Capability.COMPARE_AND_SET):
        assert driver.writes_applied(opened, listing) == 1
    else:
        assert driver.writes_applied(opened, listing) <= 2


@pytest.mark.django_db
def test_items_refused_for_good_are_dead_letters_and_the_rest_go_through(driver):
    """Two items the platform does not have, sent with the others (on TikTok Shop in the
    same product's call, answered ``code: 0`` with two per-SKU errors): each fails at once
    with the platform's reason, and only those two."""
    opened = _open(driver)
    missing = []
    for _ in range(2):
        sku = factories.make_sku()
        factories.stock(sku, opened.location, 4)
        missing.append(driver.add_listing_the_platform_lacks(opened, sku))
    _drain(opened)
    assert set(DeadLetter.objects.values_list("listing_id", flat=True)) == {
        listing.pk for listing in missing
    }
    for listing in missing:
        dead = DeadLetter.objects.get(listing=listing)
        assert len(dead.attempts) == 1 and dead.attempts[0]["error"]
    assert [driver.quantity_on_channel(opened, listing) for listing in opened.listings] == list(
        STOCK
    )


@pytest.mark.django_db
def test_a_listing_over_the_platforms_daily_limit_is_held_shown_and_sent_the_next_day(
    driver, monkeypatch
):
    """A platform that takes only so many writes of a listing a day: past it, the listing's
    new figure is held (no dead letter, no attempt counted, the reason shown) until the
    next day, and then goes out."""
    opened = _open(driver)
    _drain(opened)
    if not driver.use_up_the_days_writes(opened):
        pytest.skip(f"{driver.platform} has no daily limit of writes")
    listing = opened.listings[0]
    assert listing.sku is not None
    factories.stock(listing.sku, opened.location, 7)
    push.push_owed(channel_id=opened.channel.pk)
    held = PendingPush.objects.get(listing=listing)
    assert held.held_reason and held.not_before > timezone.now()
    assert held.attempts == 0 and not DeadLetter.objects.filter(listing=listing).exists()
    assert driver.quantity_on_channel(opened, listing) == STOCK[0]
    driver.start_the_next_day(opened, monkeypatch)
    try:
        # The database's clock cannot jump a day: the hold's end is brought to now instead.
        PendingPush.objects.filter(pk=held.pk).update(not_before=timezone.now())
        _drain(opened)
        assert driver.quantity_on_channel(opened, listing) == STOCK[0] + 7
    finally:
        driver.back_to_today()


@pytest.mark.django_db
def test_an_asynchronous_write_is_pending_until_applied_and_then_settles(driver):
    """Accepted is not applied: the listing waits as submitted, then settles as applied."""
    opened = _open(driver)
    if not get_connector(opened.channel).has(Capability.ASYNC_WRITES):
        pytest.skip(f"{driver.platform} writes synchronously")
    _drain(opened)
    listing = opened.listings[0]
    assert PushAttempt.objects.filter(
        listing=listing, outcome=PushAttempt.Outcome.SUBMITTED
    ).exists()
    assert not PushAttempt.objects.filter(listing=listing, outcome="applied").exists()
    driver.settle_submissions_on_the_platform(opened)
    push.settle_submissions(channel_id=opened.channel.pk)
    assert PushAttempt.objects.filter(listing=listing, outcome="applied").exists()
    assert driver.quantity_on_channel(opened, listing) == STOCK[0]


@pytest.mark.django_db(transaction=True)
def test_a_webhook_is_verified_deduplicated_and_parsed(driver, live_server):
    """A signed order delivered three times is stored once and committed once; a delivery
    signed with another secret is refused (401; 404 where the platform delivers through a
    queue, never to a URL) and stored nowhere."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    opened = driver.open_channel(skus=[sku], location=location, receiver_url=live_server.url)
    _drain(opened)
    driver.place_order(opened, opened.listings[0], 3, duplicates=2)
    driver.bring_events_in(opened)
    receipts = WebhookReceipt.objects.filter(channel=opened.channel)
    assert receipts.count() == 1
    _ingest_all()
    committed = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert [event.delta_committed for event in committed] == [3]
    assert driver.deliver_forged(opened) == driver.forged_delivery_status
    assert receipts.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_order_on_one_channel_moves_every_other_channel(driver, live_server):
    """Units sold on one channel come off every channel that sells the same stock."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    selling = driver.open_channel(skus=[sku], location=location, receiver_url=live_server.url)
    other = driver.open_channel(skus=[sku], location=location)
    _drain(selling)
    _drain(other)
    driver.place_order(selling, selling.listings[0], 3)
    driver.bring_events_in(selling)
    _ingest_all()
    _drain(selling)
    _drain(other)
    assert driver.quantity_on_channel(other, other.listings[0]) == 7
    assert driver.quantity_on_channel(selling, selling.listings[0]) == 7


@pytest.mark.django_db(transaction=True)
def test_a_partial_cancellation_releases_its_units_once_and_leaves_the_rest(driver, live_server):
    """Of an order of 3 units, 1 is cancelled while the rest still ships, the platform's
    announcement delivered three times: committed goes from 3 to 2, released once."""
    if not driver.cancels_some_units:
        pytest.skip(f"{driver.platform}'s simulator cannot cancel part of an order")
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    opened = driver.open_channel(skus=[sku], location=location, receiver_url=live_server.url)
    _drain(opened)
    listing = opened.listings[0]
    order_reference = driver.place_order(opened, listing, 3)
    driver.bring_events_in(opened)
    _ingest_all()
    assert StockLevel.objects.get(sku=sku, location=location).committed == 3
    driver.cancel_some_units(opened, order_reference, listing, 1, duplicates=2)
    driver.bring_events_in(opened)
    _ingest_all()
    _ingest_all()
    assert StockLevel.objects.get(sku=sku, location=location).committed == 2
    releases = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_CANCELLED)
    assert [event.delta_committed for event in releases] == [-1]
