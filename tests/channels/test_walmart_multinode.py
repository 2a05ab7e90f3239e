"""A Walmart channel that maps several ship nodes, through the pipeline, against its
simulator over HTTP: each node gets its own location's figure."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pytest

from channels.models import Channel, DeadLetter, ListingSyncState, PendingPush, PushAttempt
from channels.pipeline import push, ratelimit
from inventory import services as inventory
from inventory.models import Location
from reconciliation import services as reconciliation
from reconciliation.models import Discrepancy
from tests import factories
from tests.channels.walmart_simulator import WalmartSimulatorClient


def _open_multi_node(
    simulator: WalmartSimulatorClient,
    stock: Sequence[tuple[int, ...]],
    *,
    feed_threshold: int = 10,
    unmapped_location: bool = False,
) -> tuple[Channel, list, list[Location], str]:
    """A channel selling from two locations mapped to NODE_A and NODE_B; SKU i holds
    ``stock[i]`` at them."""
    tenant = f"multinode-{time.monotonic_ns()}"
    locations = [factories.make_location() for _ in range(3 if unmapped_location else 2)]
    skus = [factories.make_sku() for _ in stock]
    for sku, figures in zip(skus, stock, strict=True):
        for location, on_hand in zip(locations, figures, strict=False):
            factories.stock(sku, location, on_hand)
    simulator.create_seller(
        tenant,
        client_id=f"cid-{tenant}",
        client_secret=f"secret-{tenant}",
        webhook_url="http://127.0.0.1:9/",
        feed_processing_s=0,
        ship_nodes=["NODE_A", "NODE_B"],
    )
    simulator.add_items(
        tenant, [{"sku": sku.code, "nodes": {"NODE_A": 0, "NODE_B": 0}} for sku in skus]
    )
    channel = factories.make_channel(
        locations=locations,
        slug=tenant,
        platform=Channel.Platform.WALMART,
        mode=Channel.Mode.ACTIVE,
        api_base_url=simulator.seller_url(tenant),
        credentials={"client_id": f"cid-{tenant}", "client_secret": f"secret-{tenant}"},
        rate_limit_per_s=1000,
        platform_settings={
            "feed_threshold": feed_threshold,
            "retry_base_s": 0.01,
            "timeout_s": 2,
            "ship_nodes": {locations[0].code: "NODE_A", locations[1].code: "NODE_B"},
        },
    )
    ratelimit.reset(channel_id=channel.pk)
    listings = [
        factories.make_listing(channel=channel, sku=sku, external_id=sku.code) for sku in skus
    ]
    return channel, listings, locations, tenant


def _drain(channel: Channel, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=channel.pk)
        time.sleep(0.02)


def _nodes(simulator: WalmartSimulatorClient, tenant: str, sku: str) -> dict[str, int]:
    item = simulator.items(tenant)[sku]
    return {name: node["availToSellQty"] for name, node in item["nodes"].items()}


@pytest.mark.django_db
def test_each_ship_node_gets_the_figure_of_its_location(walmart_simulator):
    """Stock 5 at the first location and 7 at the second: one multi-node PUT sets NODE_A to
    5 and NODE_B to 7, and the listing's figure remembered is their sum."""
    channel, [listing], _, tenant = _open_multi_node(walmart_simulator, [(5, 7)])
    _drain(channel)

    assert _nodes(walmart_simulator, tenant, listing.external_id) == {"NODE_A": 5, "NODE_B": 7}
    [put] = [
        call
        for call in walmart_simulator.requests(tenant)
        if call.get("endpoint") == "inventories:put"
    ]
    assert put["path"].endswith(f"/v3/inventories/{listing.external_id}")
    assert ListingSyncState.objects.get(listing=listing).expected_channel_quantity == 12


@pytest.mark.django_db
def test_a_sale_at_one_location_moves_only_its_node(walmart_simulator):
    """After the first push, 2 units committed at the second location: NODE_B drops to 5,
    NODE_A keeps 5."""
    channel, [listing], locations, tenant = _open_multi_node(walmart_simulator, [(5, 7)])
    _drain(channel)
    inventory.commit_order(
        sku_id=listing.sku_id,
        location_id=locations[1].pk,
        quantity=2,
        context=factories.context("sale"),
    )
    _drain(channel)

    assert _nodes(walmart_simulator, tenant, listing.external_id) == {"NODE_A": 5, "NODE_B": 5}
    moved = [
        change
        for change in walmart_simulator.changes(tenant)
        if change["sku"] == listing.external_id and change["delta"] != 0
    ]
    assert [(change["shipNode"], change["delta"]) for change in moved] == [
        ("NODE_A", 5),
        ("NODE_B", 7),
        ("NODE_B", -2),
    ]


@pytest.mark.django_db
def test_a_large_multi_node_batch_goes_as_one_spec_1_5_feed(walmart_simulator):
    """Three listings over the feed threshold: one MP_INVENTORY feed of spec 1.5 with each
    item's nodes; once settled, every node holds its location's figure."""
    channel, listings, _, tenant = _open_multi_node(
        walmart_simulator, [(1, 2), (3, 4), (5, 6)], feed_threshold=2
    )
    _drain(channel)
    assert push.settle_submissions(channel_id=channel.pk) == 3

    [feed] = walmart_simulator.feeds(tenant)
    assert feed["feedType"] == "MP_INVENTORY"
    assert feed["feedStatus"] == "PROCESSED"
    [posted] = [
        call for call in walmart_simulator.requests(tenant) if call.get("endpoint") == "feeds:post"
    ]
    assert '"version": "1.5"' in posted["body"]
    assert [_nodes(walmart_simulator, tenant, listing.external_id) for listing in listings] == [
        {"NODE_A": 1, "NODE_B": 2},
        {"NODE_A": 3, "NODE_B": 4},
        {"NODE_A": 5, "NODE_B": 6},
    ]
    assert PushAttempt.objects.filter(channel=channel, outcome="applied").count() == 3


@pytest.mark.django_db
def test_reconciliation_compares_the_mapped_nodes_with_their_locations(walmart_simulator):
    """Pushed and read back: no drift. A node changed in Seller Center is drift, found and
    corrected with that node's figure."""
    channel, [listing], _, tenant = _open_multi_node(walmart_simulator, [(5, 7)])
    _drain(channel)
    ListingSyncState.objects.filter(listing=listing).update(last_pushed_at="2000-01-01T00:00Z")
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None and run.status == "done", run and run.error
    run.refresh_from_db()
    assert (run.listings_checked, run.found) == (1, 0)

    walmart_simulator.set_quantity(tenant, listing.external_id, 1, ship_node="NODE_B")
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None and run.status == "done", run and run.error
    run.refresh_from_db()
    assert run.found == 1
    discrepancy = Discrepancy.objects.get(run=run)
    assert (discrepancy.actual, discrepancy.expected) == (6, 12)
    _drain(channel)
    assert _nodes(walmart_simulator, tenant, listing.external_id) == {"NODE_A": 5, "NODE_B": 7}


@pytest.mark.django_db
def test_a_location_without_a_ship_node_is_refused_and_sends_nothing(walmart_simulator):
    """The channel sells from a third location no node is mapped to: the listing is a dead
    letter naming the location, and Walmart is not called."""
    channel, [listing], locations, tenant = _open_multi_node(
        walmart_simulator, [(5, 7, 9)], unmapped_location=True
    )
    _drain(channel)

    dead = DeadLetter.objects.get(listing=listing)
    assert locations[2].code in dead.attempts[0]["error"]
    assert not [
        call
        for call in walmart_simulator.requests(tenant)
        if call.get("endpoint") == "inventories:put"
    ]


@pytest.mark.django_db
def test_a_node_the_seller_does_not_have_is_refused_for_good(walmart_simulator):
    """A listing mapping its own nodes (``extra_identifiers``), one unknown to Walmart: the
    per-node status refuses it, and the listing is a dead letter with Walmart's reason."""
    channel, [listing], locations, _ = _open_multi_node(walmart_simulator, [(5, 7)])
    listing.extra_identifiers = {
        "ship_nodes": {locations[0].code: "NODE_A", locations[1].code: "NODE_Z"}
    }
    listing.save(update_fields=["extra_identifiers"])
    _drain(channel)

    dead = DeadLetter.objects.get(listing=listing)
    assert "NODE_Z" in json.dumps(dead.attempts)
