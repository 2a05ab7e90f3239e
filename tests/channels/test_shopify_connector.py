"""ShopifyConnector against the simulator process: real HTTP, real Channel rows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled
from channels.connectors.registry import get_connector
from channels.connectors.shopify.connector import ShopifyConnector
from channels.connectors.types import ItemStatus, ListingRef, QuantityUpdate
from channels.models import Channel
from tests.channels.conftest import ShopifySimulatorClient

_shop_numbers = itertools.count(1)
ITEMS = {1001: 10, 1002: 5, 1003: 0}


def make_channel(
    sim: ShopifySimulatorClient,
    *,
    shop_settings: dict[str, Any] | None = None,
    **platform_settings: Any,
) -> Channel:
    shop = f"conn-{next(_shop_numbers)}"
    sim.create_shop(shop, location_id=77, **(shop_settings or {}))
    sim.add_items(
        shop,
        [
            {
                "inventory_item_id": item,
                "variant_id": item + 1000,
                "sku": f"S{item}",
                "available": n,
            }
            for item, n in ITEMS.items()
        ],
    )
    return Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name=shop,
        slug=shop,
        api_base_url=sim.shop_url(shop),
        credentials={"access_token": f"shpat_{shop}"},
        platform_settings={"location_id": 77, **platform_settings},
    )


def shop_of(channel: Channel) -> str:
    return channel.slug


def update(item: int, quantity: int, compare: int | None, key: str = "") -> QuantityUpdate:
    return QuantityUpdate(
        listing_id=item,
        external_id=str(item),
        quantity=quantity,
        compare_quantity=compare,
        idempotency_key=key or f"push-{item}-{quantity}-{compare}",
    )


@pytest.fixture
def channel(db, shopify_simulator) -> Channel:
    return make_channel(shopify_simulator)


def test_registry_builds_a_shopify_connector_with_the_channel_batch_size(db, shopify_simulator):
    channel = make_channel(shopify_simulator, max_batch_size=50)
    connector = get_connector(channel)
    assert isinstance(connector, ShopifyConnector)
    assert connector.batch_size == 50
    assert ShopifyConnector.max_batch_size == 250


def test_push_sets_quantities_and_read_back_returns_them(channel, shopify_simulator):
    connector = get_connector(channel)
    results = connector.push_quantities([update(1001, 7, 10), update(1002, 0, None)])
    assert [r.status for r in results] == [ItemStatus.APPLIED, ItemStatus.APPLIED]
    read = connector.read_quantities(
        [
            ListingRef(1001, "1001"),
            ListingRef(1002, "gid://shopify/InventoryItem/1002"),
            ListingRef(9, "9999"),
        ]
    )
    assert read == {1001: 7, 1002: 0, 9: None}
    [sent] = shopify_simulator.requests(shop_of(channel))[:1]
    assert sent["api_version"] == "2026-01"
    assert '"changeFromQuantity": 10' in sent["body"]
    assert "@idempotent(key:" in sent["body"]
    assert '"gid://nventory/Push/' in sent["body"]


def test_wrong_token_raises_auth_error_without_leaking_the_token(channel):
    channel.credentials = {"access_token": "shpat_leaky_secret"}
    with pytest.raises(ChannelAuthError) as raised:
        get_connector(channel).push_quantities([update(1001, 1, None)])
    assert "shpat_leaky_secret" not in str(raised.value)


@pytest.mark.parametrize("api_version", ["2026-01", "2025-10"])
def test_stale_compare_returns_stale_with_the_channel_figure(db, shopify_simulator, api_version):
    channel = make_channel(shopify_simulator, api_version=api_version)
    shopify_simulator.set_quantity(shop_of(channel), 1001, 8)
    [result] = get_connector(channel).push_quantities([update(1001, 3, 10)])
    assert result.status == ItemStatus.STALE
    assert result.actual_quantity == 8
    assert shopify_simulator.available(shop_of(channel), 1001) == 8


def test_old_dialect_sends_compared_and_uncompared_updates_in_separate_calls(
    db, shopify_simulator
):
    channel = make_channel(shopify_simulator, api_version="2025-10")
    results = get_connector(channel).push_quantities([update(1001, 4, 10), update(1002, 9, None)])
    assert [r.status for r in results] == [ItemStatus.APPLIED, ItemStatus.APPLIED]
    bodies = [r["body"] for r in shopify_simulator.requests(shop_of(channel))]
    assert len(bodies) == 2
    assert '"compareQuantity": 10' in bodies[0] and '"ignoreCompareQuantity": false' in bodies[0]
    assert '"ignoreCompareQuantity": true' in bodies[1]
    # No @idempotent before 2026-01: that version's schema has no such directive.
    assert not any("@idempotent" in body for body in bodies)


def test_one_bad_item_fails_only_itself(channel, shopify_simulator):
    """The call is atomic: the good items are sent again without the unknown and stale ones."""
    results = get_connector(channel).push_quantities(
        [update(1001, 6, 10), update(4242, 1, None), update(1002, 1, 2), update(1003, 3, 0)]
    )
    assert [r.status for r in results] == [
        ItemStatus.APPLIED,
        ItemStatus.REJECTED,
        ItemStatus.STALE,
        ItemStatus.APPLIED,
    ]
    assert "INVALID_INVENTORY_ITEM" in results[1].error
    assert results[2].actual_quantity == 5
    items = shopify_simulator.items(shop_of(channel))
    assert [items[i]["available"] for i in (1001, 1002, 1003)] == [6, 5, 3]


def test_item_without_a_location_is_rejected_before_any_call(db, shopify_simulator):
    channel = make_channel(shopify_simulator)
    channel.platform_settings = {}
    [result] = get_connector(channel).push_quantities([update(1001, 1, None)])
    assert result.status == ItemStatus.REJECTED
    assert shopify_simulator.requests(shop_of(channel)) == []


def test_retry_after_timeout_with_the_same_keys_is_not_applied_twice(db, shopify_simulator):
    channel = make_channel(shopify_simulator, timeout_s=0.3)
    shop = shop_of(channel)
    shopify_simulator.faults(shop, timeout_next=1, timeout_s=1.0)
    batch = [update(1001, 4, 10, key="outbox-1")]
    with pytest.raises(ChannelError) as raised:
        get_connector(channel).push_quantities(batch)
    assert not isinstance(raised.value, ChannelThrottled)
    assert shopify_simulator.available(shop, 1001) == 4
    # Someone sells on the channel meanwhile: a double apply would overwrite this.
    shopify_simulator.set_quantity(shop, 1001, 3)
    [result] = get_connector(channel).push_quantities(batch)
    assert result.status == ItemStatus.APPLIED
    assert shopify_simulator.available(shop, 1001) == 3
    assert [c["source"] for c in shopify_simulator.changes(shop)] == ["api", "manual"]


@pytest.mark.parametrize("throttle_status", [200, 429])
def test_throttled_call_raises_channel_throttled_with_retry_after(
    db, shopify_simulator, throttle_status
):
    channel = make_channel(
        shopify_simulator,
        shop_settings={"bucket_size": 15, "restore_rate": 2, "throttle_status": throttle_status},
    )
    connector = get_connector(channel)
    connector.push_quantities([update(1001, 1, None)])
    with pytest.raises(ChannelThrottled) as raised:
        connector.push_quantities([update(1001, 2, None)])
    assert raised.value.retry_after_s is not None
    assert 2 <= raised.value.retry_after_s <= 3


def test_server_error_raises_channel_error(channel, shopify_simulator):
    shopify_simulator.faults(shop_of(channel), fail_next=1, fail_status=503)
    with pytest.raises(ChannelError) as raised:
        get_connector(channel).push_quantities([update(1001, 1, None)])
    assert type(raised.value) is ChannelError
    assert "503" in str(raised.value)


def test_unreachable_channel_raises_channel_error(db, shopify_simulator):
    channel = make_channel(shopify_simulator)
    channel.api_base_url = "http://127.0.0.1:9/shops/nowhere"
    with pytest.raises(ChannelError):
        get_connector(channel).read_quantities([ListingRef(1001, "1001")])


def test_dropped_write_answers_applied_but_changes_nothing(channel, shopify_simulator):
    """Accepted but not applied: only a read-back (reconciliation) can see it."""
    shopify_simulator.faults(shop_of(channel), drop_next=1)
    connector = get_connector(channel)
    [result] = connector.push_quantities([update(1001, 2, 10)])
    assert result.status == ItemStatus.APPLIED
    assert connector.read_quantities([ListingRef(1001, "1001")]) == {1001: 10}


def test_read_quantities_chunks_past_250_ids(db, shopify_simulator):
    channel = make_channel(shopify_simulator)
    shop = shop_of(channel)
    shopify_simulator.add_items(
        shop,
        [
            {"inventory_item_id": 5000 + n, "variant_id": 6000 + n, "available": n}
            for n in range(300)
        ],
    )
    read = get_connector(channel).read_quantities(
        [ListingRef(n, str(5000 + n)) for n in range(300)]
    )
    assert read == {n: n for n in range(300)}
    assert len(shopify_simulator.requests(shop)) == 2


def test_listing_location_overrides_the_channel_location(channel, shopify_simulator):
    elsewhere = {"location_id": "gid://shopify/Location/5"}
    connector = get_connector(channel)
    [result] = connector.push_quantities(
        [
            QuantityUpdate(
                listing_id=1,
                external_id="1001",
                quantity=1,
                compare_quantity=None,
                idempotency_key="elsewhere",
                extra_identifiers=elsewhere,
            )
        ]
    )
    assert result.status == ItemStatus.REJECTED
    assert connector.read_quantities([ListingRef(1, "1001", elsewhere)]) == {1: None}


def test_proxies_come_from_the_environment_once_per_url_and_no_proxy_is_honoured(monkeypatch):
    from channels.connectors import http

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    http.proxies_for.cache_clear()
    try:
        assert http.proxies_for("http://shop.example/admin/api/graphql.json")["http"] == (
            "http://proxy.example:3128"
        )
        assert http.proxies_for("http://127.0.0.1:8765/admin/api/graphql.json") == {}
    finally:
        http.proxies_for.cache_clear()
    # Not read again on every call (the session does not look at the environment).
    assert http.session().trust_env is False


def test_an_error_about_the_call_itself_blames_no_item_and_is_tried_again(db, shopify_simulator):
    """A userError naming no item (here: more quantities than the shop takes in one call)
    says nothing against any of them: each is to be retried, none refused for good."""
    channel = make_channel(shopify_simulator, shop_settings={"max_quantities_per_call": 1})
    results = get_connector(channel).push_quantities([update(1001, 7, 10), update(1002, 3, 5)])
    assert [result.status for result in results] == [ItemStatus.RETRY, ItemStatus.RETRY]
    assert all("TOO_MANY_QUANTITIES" in result.error for result in results)
    assert shopify_simulator.available(shop_of(channel), 1001) == 10
