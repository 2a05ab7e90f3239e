"""Poison pushes are contained: one listing that answers garbage, raises, or kills its run
ends as a dead letter after its tries, and every other listing of the channel converges.

Against the Shopify simulator over real HTTP; runs are called in this process, as the
Celery task calls them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest
from django.utils import timezone

from channels.connectors.base import UnreadableAnswer, checked_quantity
from channels.connectors.shopify.connector import ShopifyConnector
from channels.models import Channel, DeadLetter, PendingPush, PushAttempt
from channels.pipeline import push, ratelimit
from tests import factories

_shop_numbers = itertools.count(1)
ITEMS = tuple(range(3001, 3007))
POISON = ITEMS[2]


@pytest.fixture
def shop(shopify_simulator):
    name = f"poison-{next(_shop_numbers)}-{time.monotonic_ns()}"
    shopify_simulator.create_shop(name, location_id=1, webhook_url="http://127.0.0.1:9/")
    shopify_simulator.add_items(
        name,
        [
            {"inventory_item_id": item, "variant_id": item + 1000, "sku": f"P{item}"}
            for item in ITEMS
        ],
    )
    return name


@pytest.fixture
def channel(db, shopify_simulator, shop):
    location = factories.make_location()
    channel = factories.make_channel(
        locations=[location],
        slug=shop,
        mode=Channel.Mode.ACTIVE,
        api_base_url=shopify_simulator.shop_url(shop),
        credentials={"access_token": f"shpat_{shop}"},
        rate_limit_per_s=1000,
        platform_settings={"location_id": 1, "retry_base_s": 0.01, "timeout_s": 0.5},
    )
    ratelimit.reset(channel_id=channel.pk)
    channel.location = location
    return channel


@pytest.fixture
def listings(channel):
    """One listing per item, the SKU of each with a stock of its own (10, 11, ...)."""
    made = {}
    for offset, item in enumerate(ITEMS):
        sku = factories.make_sku()
        factories.stock(sku, channel.location, 10 + offset)
        made[item] = factories.make_listing(
            channel=channel,
            sku=sku,
            external_id=str(item),
            extra_identifiers={"variant_id": str(item + 1000)},
        )
    return made


def drain(channel: Channel, timeout_s: float = 20) -> None:
    """Run the pusher until the channel owes nothing, letting lapsed claims go at once."""
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=channel).exists():
        assert time.monotonic() < deadline, list(PendingPush.objects.values())
        push.push_owed(channel_id=channel.pk)
        time.sleep(0.02)


def shown(simulator, shop: str) -> dict[int, int]:
    return {item_id: item["available"] for item_id, item in simulator.items(shop).items()}


def expected(listings) -> dict[int, int]:
    return {item: 10 + offset for offset, item in enumerate(ITEMS) if item in listings}


def test_a_listing_the_channel_answers_with_garbage_is_a_dead_letter_and_the_rest_converge(
    channel, listings, shopify_simulator, shop
):
    """The shop claims the poison item moved, then reads it back as "lots": that item
    fails alone, try after try, until it is a dead letter; every other listing is right."""
    shopify_simulator.update_shop(shop, garbage_item_ids=[POISON])
    drain(channel)

    [dead] = DeadLetter.objects.filter(channel=channel)
    assert dead.listing_id == listings[POISON].pk
    assert len(dead.attempts) == channel.max_push_attempts
    assert all("unreadable" in attempt["error"] for attempt in dead.attempts)
    figures = shown(shopify_simulator, shop)
    others = {item: figure for item, figure in figures.items() if item != POISON}
    assert others == {item: q for item, q in expected(listings).items() if item != POISON}
    assert not DeadLetter.objects.exclude(listing_id=listings[POISON].pk).exists()


def test_a_group_that_raises_is_let_go_and_its_rows_are_then_pushed_alone(
    channel, listings, shopify_simulator, shop, monkeypatch
):
    """An exception nobody foresaw in one batch ends that batch only: its rows keep their
    tries, are pushed one by one, and only the listing that raises every time runs out."""
    poison_listing = listings[POISON].pk
    real_send_batch = ShopifyConnector._send_batch
    batch_sizes: list[int] = []

    def send_batch(self, updates):
        batch_sizes.append(len(updates))
        if any(update.listing_id == poison_listing for update in updates):
            raise RuntimeError("a bug in the mapping of this one listing")
        return real_send_batch(self, updates)

    monkeypatch.setattr(ShopifyConnector, "_send_batch", send_batch)
    drain(channel)

    assert batch_sizes[0] == len(ITEMS)  # together first, then suspects alone
    assert set(batch_sizes[1:]) == {1}
    [dead] = DeadLetter.objects.filter(channel=channel)
    assert dead.listing_id == poison_listing
    assert any("RuntimeError" in attempt["error"] for attempt in dead.attempts)
    figures = shown(shopify_simulator, shop)
    assert {item: figures[item] for item in ITEMS if item != POISON} == {
        item: q for item, q in expected(listings).items() if item != POISON
    }


def abandon_claims(channel: Channel) -> int:
    """What a worker killed mid-push leaves: rows claimed, never settled, lease lapsed."""
    claimed = push._claim(channel=channel, limit=100)
    PendingPush.objects.filter(pk__in=[claim.pending_id for claim in claimed]).update(
        claimed_until=timezone.now() - dt.timedelta(seconds=1)
    )
    return len(claimed)


def test_a_row_whose_claims_never_settle_is_dead_lettered_unsent_after_its_tries(
    channel, listings, shopify_simulator, shop
):
    """A claim counts a try: a listing whose push kills its worker every time is a dead
    letter at its next claim once its tries are spent, without being sent again."""
    poison = PendingPush.objects.get(listing=listings[POISON])
    PendingPush.objects.exclude(pk=poison.pk).update(not_before=timezone.now() + dt.timedelta(1))
    for _ in range(channel.max_push_attempts):
        assert abandon_claims(channel) == 1
    PendingPush.objects.update(not_before=timezone.now())
    drain(channel)

    [dead] = DeadLetter.objects.filter(channel=channel)
    assert dead.listing_id == listings[POISON].pk
    assert "no try settled" in dead.attempts[-1]["error"]
    assert not PushAttempt.objects.filter(listing=listings[POISON]).exists()
    figures = shown(shopify_simulator, shop)
    assert {item: figures[item] for item in ITEMS if item != POISON} == {
        item: q for item, q in expected(listings).items() if item != POISON
    }


def test_rows_of_a_killed_run_keep_their_tries_and_go_through_alone(
    channel, listings, shopify_simulator, shop
):
    """One killed run costs its rows one try each, not all of them: they go through."""
    assert abandon_claims(channel) == len(ITEMS)
    PendingPush.objects.update(not_before=timezone.now())
    drain(channel)
    assert not DeadLetter.objects.exists()
    assert shown(shopify_simulator, shop) == expected(listings)
    assert set(
        PushAttempt.objects.filter(outcome="applied").values_list("attempt_number", flat=True)
    ) == {2}


class WorkerKilled(BaseException):
    """Stands for the process ending mid-run: no handler of the pusher catches it."""


def test_a_worker_killed_mid_run_spends_no_try_of_the_rows_still_waiting_their_turn(
    channel, listings, shopify_simulator, shop, monkeypatch
):
    """Rows whose claims never settled go one by one; a worker killed while sending the
    second spends the try of that one only, not of those still waiting behind it (three
    kills in a burst would otherwise dead-letter listings that were never sent)."""
    abandon_claims(channel)
    PendingPush.objects.update(not_before=timezone.now())
    real_send_batch = ShopifyConnector._send_batch
    calls = itertools.count(1)

    def send_batch(self, updates):
        if next(calls) == 2:
            raise WorkerKilled
        return real_send_batch(self, updates)

    monkeypatch.setattr(ShopifyConnector, "_send_batch", send_batch)
    with pytest.raises(WorkerKilled):
        push.push_owed(channel_id=channel.pk)

    # The first was sent and settled; the second was in flight; the rest kept their try.
    assert sorted(PendingPush.objects.values_list("attempts", flat=True)) == [1] * (
        len(ITEMS) - 2
    ) + [2]


def test_a_throttled_call_gives_back_the_try_its_claim_counted(
    channel, listings, shopify_simulator, shop
):
    shopify_simulator.faults(shop, throttle_next=1)
    push.push_owed(channel_id=channel.pk)
    assert set(PendingPush.objects.values_list("attempts", flat=True)) == {0}
    assert set(PendingPush.objects.values_list("claimed_until", flat=True)) == {None}


@pytest.mark.parametrize("figure", ["12", 1.5, True, 10**12, -(10**10), float("nan")])
def test_a_figure_no_quantity_can_be_is_unreadable(figure):
    with pytest.raises(UnreadableAnswer):
        checked_quantity(figure, what="test")


@pytest.mark.parametrize("figure", [None, 0, -3, 2_147_483_647])
def test_a_figure_in_range_is_taken(figure):
    assert checked_quantity(figure, what="test") == figure
