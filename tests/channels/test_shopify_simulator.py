"""The Shopify simulator speaks the dialect of CHANNEL_APIS.md §1, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.channels.conftest import ShopifySimulatorClient

SECRET = "whsec-test-0123456789abcdefghij"
_shop_numbers = itertools.count(1)


class WebhookReceiver:
    """A local endpoint that records deliveries and answers the statuses it is told to."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.deliveries.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # The default backlog of 5 refuses a burst of concurrent deliveries.
            request_queue_size = 512

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/shopify/1/"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def wait_for(self, count: int, timeout_s: float = 5) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.01)
        raise AssertionError(f"{len(self.deliveries)} deliveries, expected {count}")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def shop(shopify_simulator: ShopifySimulatorClient, receiver: WebhookReceiver) -> str:
    name = f"sim-{next(_shop_numbers)}"
    shopify_simulator.create_shop(
        name,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        location_id=77,
        webhook_retry_base_s=0.05,
    )
    shopify_simulator.add_items(
        name,
        [
            {"inventory_item_id": 1001, "variant_id": 2001, "sku": "A", "available": 10},
            {"inventory_item_id": 1002, "variant_id": 2002, "sku": "B", "available": 5},
        ],
    )
    return name


def graphql(
    sim: ShopifySimulatorClient,
    shop: str,
    query: str,
    variables: dict[str, Any],
    *,
    api_version: str = "2026-01",
    token: str | None = None,
) -> requests.Response:
    return requests.post(
        sim.graphql_url(shop, api_version),
        json={"query": query, "variables": variables},
        headers={"X-Shopify-Access-Token": token if token is not None else f"shpat_{shop}"},
        timeout=5,
    )


def set_mutation(key: str | None = None) -> str:
    directive = f'@idempotent(key: "{key}")' if key else ""
    return (
        "mutation S($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) "
        f"{directive} {{ inventoryAdjustmentGroup {{ id changes {{ name delta }} }} "
        "userErrors { code field message } } }"
    )


NODES_QUERY = (
    "query R($ids: [ID!]!, $locationId: ID!) { nodes(ids: $ids) { id ... on InventoryItem { "
    'inventoryLevel(locationId: $locationId) { quantities(names: ["available", "committed", '
    '"on_hand"]) { name quantity } } } } }'
)


def quantity(item: int, to: int, change_from: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
        "locationId": "gid://shopify/Location/77",
        "quantity": to,
        "changeFromQuantity": change_from,
        **extra,
    }


def set_input(*quantities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": "gid://nventory/Push/test",
            "quantities": list(quantities),
            **extra,
        }
    }


def signature(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def test_missing_or_wrong_token_gets_401_with_shopify_error_body(shopify_simulator, shop):
    for token in ("", "shpat_wrong"):
        response = graphql(shopify_simulator, shop, NODES_QUERY, {"ids": []}, token=token)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong "
            "password)"
        }


def test_set_quantities_applies_and_nodes_reads_back_with_cost(shopify_simulator, shop):
    response = graphql(shopify_simulator, shop, set_mutation(), set_input(quantity(1001, 7, 10)))
    assert response.status_code == 200
    payload = response.json()["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    first_change = payload["inventoryAdjustmentGroup"]["changes"][0]
    assert (first_change["name"], first_change["delta"]) == ("available", -3)
    cost = response.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 10
    assert cost["throttleStatus"]["maximumAvailable"] == 1000.0

    ids = ["gid://shopify/InventoryItem/1001", "gid://shopify/InventoryItem/9999"]
    read = graphql(
        shopify_simulator,
        shop,
        NODES_QUERY,
        {"ids": ids, "locationId": "gid://shopify/Location/77"},
    ).json()
    # Two ids, each an item (1) with a level (1) and its quantities (1).
    assert read["extensions"]["cost"]["requestedQueryCost"] == 6
    first, unknown = read["data"]["nodes"]
    assert unknown is None
    assert first["inventoryLevel"]["quantities"] == [
        {"name": "available", "quantity": 7},
        {"name": "committed", "quantity": 0},
        {"name": "on_hand", "quantity": 7},
    ]


def test_stale_change_from_quantity_fails_the_whole_call(shopify_simulator, shop):
    """2026-01: one stale item is a userError and nothing in the call is applied."""
    response = graphql(
        shopify_simulator,
        shop,
        set_mutation(),
        set_input(quantity(1001, 1, 10), quantity(1002, 2, 4)),
    )
    payload = response.json()["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    assert payload["userErrors"] == [
        {
            "code": "CHANGE_FROM_QUANTITY_STALE",
            "field": ["input", "quantities", "1", "changeFromQuantity"],
            "message": payload["userErrors"][0]["message"],
        }
    ]
    items = shopify_simulator.items(shop)
    assert (items[1001]["available"], items[1002]["available"]) == (10, 5)


def test_change_from_quantity_is_mandatory_from_2026_04(shopify_simulator, shop):
    without = {k: v for k, v in quantity(1001, 3, None).items() if k != "changeFromQuantity"}
    response = graphql(
        shopify_simulator, shop, set_mutation("k-0"), set_input(without), api_version="2026-04"
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    assert "changeFromQuantity" in error["message"]
    assert response.json()["data"] == {"inventorySetQuantities": None}
    assert shopify_simulator.available(shop, 1001) == 10


def test_2026_01_falls_back_to_compare_quantity_when_change_from_is_absent(
    shopify_simulator, shop
):
    """SH8: in 2026-01 the deprecated fields still decide when changeFromQuantity is absent."""
    without = {k: v for k, v in quantity(1001, 3, None).items() if k != "changeFromQuantity"}
    required = graphql(shopify_simulator, shop, set_mutation(), set_input(without)).json()
    assert required["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == (
        "COMPARE_QUANTITY_REQUIRED"
    )
    stale = graphql(
        shopify_simulator, shop, set_mutation(), set_input(without | {"compareQuantity": 9})
    ).json()
    assert stale["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == (
        "COMPARE_QUANTITY_STALE"
    )
    ignored = graphql(
        shopify_simulator, shop, set_mutation(), set_input(without, ignoreCompareQuantity=True)
    ).json()
    assert ignored["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shopify_simulator.available(shop, 1001) == 3
    # Any changeFromQuantity, null included, overrides compareQuantity.
    both = quantity(1001, 4, None) | {"compareQuantity": 99}
    overridden = graphql(shopify_simulator, shop, set_mutation(), set_input(both)).json()
    assert overridden["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shopify_simulator.available(shop, 1001) == 4


def test_compare_quantity_dialect_up_to_2025_10(shopify_simulator, shop):
    def call(variables: dict[str, Any]) -> dict[str, Any]:
        return graphql(
            shopify_simulator, shop, set_mutation(), variables, api_version="2025-10"
        ).json()

    def old(item: int, to: int, **extra: Any) -> dict[str, Any]:
        fields = quantity(item, to, None, **extra)
        del fields["changeFromQuantity"]
        return fields

    stale = call(set_input(old(1001, 3, compareQuantity=9)))
    assert stale["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == (
        "COMPARE_QUANTITY_STALE"
    )
    assert call(set_input(quantity(1001, 3, 10)))["errors"]  # not in this version's schema
    ignored = call(set_input(old(1001, 3), ignoreCompareQuantity=True))
    assert ignored["data"]["inventorySetQuantities"]["userErrors"] == []
    matched = call(set_input(old(1001, 4, compareQuantity=3)))
    assert matched["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shopify_simulator.available(shop, 1001) == 4


def test_repeated_idempotency_key_returns_first_result_without_applying(shopify_simulator, shop):
    first = graphql(shopify_simulator, shop, set_mutation("k-1"), set_input(quantity(1001, 8, 10)))
    shopify_simulator.set_quantity(shop, 1001, 10)
    again = graphql(shopify_simulator, shop, set_mutation("k-1"), set_input(quantity(1001, 8, 10)))
    assert again.json()["data"] == first.json()["data"]
    assert shopify_simulator.available(shop, 1001) == 10
    assert [c["source"] for c in shopify_simulator.changes(shop)] == ["api", "manual"]


def test_unknown_item_and_unknown_location_have_their_own_codes_and_block_the_call(
    shopify_simulator, shop
):
    other_location = quantity(1002, 1, None) | {"locationId": "gid://shopify/Location/5"}
    response = graphql(
        shopify_simulator,
        shop,
        set_mutation(),
        set_input(quantity(1001, 1, None), quantity(4242, 1, None), other_location),
    )
    errors = response.json()["data"]["inventorySetQuantities"]["userErrors"]
    assert [(e["code"], e["field"][2:]) for e in errors] == [
        ("INVALID_INVENTORY_ITEM", ["1", "inventoryItemId"]),
        ("INVALID_LOCATION", ["2", "locationId"]),
    ]
    assert shopify_simulator.available(shop, 1001) == 10


def test_more_quantities_than_the_shop_allows_is_a_user_error(shopify_simulator, shop):
    shopify_simulator.create_shop(shop, location_id=77, max_quantities_per_call=1)
    shopify_simulator.add_items(shop, [{"inventory_item_id": 1001, "variant_id": 2001}])
    response = graphql(
        shopify_simulator,
        shop,
        set_mutation(),
        set_input(quantity(1001, 1, None), quantity(1001, 2, None)),
    )
    errors = response.json()["data"]["inventorySetQuantities"]["userErrors"]
    assert errors[0]["field"] == ["input", "quantities"]


def test_empty_bucket_throttles_with_200_or_429(shopify_simulator, shop):
    shopify_simulator.create_shop(shop, location_id=77, bucket_size=15, restore_rate=1)
    mutation, variables = set_mutation(), set_input()
    assert graphql(shopify_simulator, shop, mutation, variables).json()["data"]
    throttled = graphql(shopify_simulator, shop, mutation, variables)
    assert throttled.status_code == 200
    body = throttled.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 5

    shopify_simulator.create_shop(
        shop, location_id=77, bucket_size=15, restore_rate=1, throttle_status=429
    )
    graphql(shopify_simulator, shop, mutation, variables)
    throttled = graphql(shopify_simulator, shop, mutation, variables)
    assert throttled.status_code == 429
    assert 4 <= float(throttled.headers["Retry-After"]) <= 5


def test_fail_and_drop_faults(shopify_simulator, shop):
    shopify_simulator.faults(shop, fail_next=1, fail_status=502, drop_next=1)
    variables = set_input(quantity(1001, 2, None))
    assert graphql(shopify_simulator, shop, set_mutation(), variables).status_code == 502
    dropped = graphql(shopify_simulator, shop, set_mutation(), variables)
    assert dropped.json()["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shopify_simulator.available(shop, 1001) == 10
    assert graphql(shopify_simulator, shop, set_mutation(), variables).status_code == 200
    assert shopify_simulator.available(shop, 1001) == 2
    assert shopify_simulator.faults(shop, reset=True)["drop_next"] == 0


def test_timeout_fault_applies_the_write_then_answers_late(shopify_simulator, shop):
    shopify_simulator.faults(shop, timeout_next=1, timeout_s=1.0)
    with pytest.raises(requests.Timeout):
        requests.post(
            shopify_simulator.graphql_url(shop),
            json={"query": set_mutation(), "variables": set_input(quantity(1001, 4, None))},
            headers={"X-Shopify-Access-Token": f"shpat_{shop}"},
            timeout=0.3,
        )
    assert shopify_simulator.available(shop, 1001) == 4


def test_order_is_delivered_as_a_signed_webhook_and_commits_units(
    shopify_simulator, shop, receiver
):
    answer = shopify_simulator.place_order(shop, [{"variant_id": 2001, "quantity": 12}])
    assert answer["delivery_status"] == 200
    [(headers, body)] = receiver.wait_for(1)
    assert headers["X-Shopify-Hmac-Sha256"] == signature(body)
    assert headers["X-Shopify-Topic"] == "orders/create"
    assert headers["X-Shopify-Shop-Domain"] == f"{shop}.myshopify.com"
    assert headers["X-Shopify-Webhook-Id"] == answer["webhook_id"]
    assert headers["X-Shopify-API-Version"] == "2026-01"
    assert headers["X-Shopify-Event-Id"] and headers["X-Shopify-Triggered-At"]
    order = json.loads(body)
    assert order["id"] == answer["order_id"]
    assert order["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    [line] = order["line_items"]
    assert (line["id"], line["variant_id"], line["sku"], line["quantity"]) == (
        answer["line_item_ids"][0],
        2001,
        "A",
        12,
    )
    # Sold on a stale count: the channel goes negative, the oversell we must record.
    item = shopify_simulator.items(shop)[1001]
    assert (item["available"], item["committed"], item["on_hand"]) == (-2, 12, 10)


def test_duplicates_reuse_the_webhook_id(shopify_simulator, shop, receiver):
    answer = shopify_simulator.place_order(
        shop, [{"variant_id": 2002, "quantity": 1}], duplicates=2
    )
    deliveries = receiver.wait_for(3)
    assert {h["X-Shopify-Webhook-Id"] for h, _ in deliveries} == {answer["webhook_id"]}
    assert len({body for _, body in deliveries}) == 1


def test_failed_delivery_is_retried_with_the_same_webhook_id(shopify_simulator, shop, receiver):
    receiver.statuses = [500, 500]
    answer = shopify_simulator.place_order(shop, [{"variant_id": 2002, "quantity": 1}])
    assert answer["delivery_status"] == 500
    deliveries = receiver.wait_for(3)
    assert [h["X-Shopify-Webhook-Id"] for h, _ in deliveries] == [answer["webhook_id"]] * 3
    # The simulator records an attempt just after the receiver answers it.
    deadline = time.monotonic() + 2
    while len(shopify_simulator.webhooks(shop)[0]["attempts"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [stored] = shopify_simulator.webhooks(shop)
    assert [a["status"] for a in stored["attempts"]] == [500, 500, 200]


def test_undelivered_event_can_be_redelivered_later(shopify_simulator, shop, receiver):
    answer = shopify_simulator.place_order(
        shop, [{"variant_id": 2002, "quantity": 1}], deliver=False
    )
    assert answer["delivery_status"] is None
    assert shopify_simulator.redeliver(shop, answer["webhook_id"])["delivery_status"] == 200
    [(headers, _)] = receiver.wait_for(1)
    assert headers["X-Shopify-Webhook-Id"] == answer["webhook_id"]


def test_cancel_and_refund_restock_and_send_their_topics(shopify_simulator, shop, receiver):
    first = shopify_simulator.place_order(shop, [{"variant_id": 2001, "quantity": 3}])
    second = shopify_simulator.place_order(shop, [{"variant_id": 2001, "quantity": 2}])
    shopify_simulator.cancel_order(shop, first["order_id"])
    refund = shopify_simulator.refund(
        shop,
        second["order_id"],
        [{"line_item_id": second["line_item_ids"][0], "quantity": 1, "restock_type": "return"}],
    )
    deliveries = receiver.wait_for(4)
    topics = [headers["X-Shopify-Topic"] for headers, _ in deliveries]
    assert topics == ["orders/create", "orders/create", "orders/cancelled", "refunds/create"]
    cancelled = json.loads(deliveries[2][1])
    assert cancelled["id"] == first["order_id"] and cancelled["cancelled_at"]
    refunded = json.loads(deliveries[3][1])
    assert refunded["id"] == refund["refund_id"]
    assert refunded["order_id"] == second["order_id"]
    [refund_line] = refunded["refund_line_items"]
    assert refund_line["restock_type"] == "return"
    assert refund_line["location_id"] == 77
    assert refund_line["line_item"]["variant_id"] == 2001
    item = shopify_simulator.items(shop)[1001]
    assert (item["available"], item["committed"]) == (9, 1)


def test_manual_edit_with_notify_sends_inventory_levels_update(shopify_simulator, shop, receiver):
    shopify_simulator.set_quantity(shop, 1002, 42, notify=True)
    [(headers, body)] = receiver.wait_for(1)
    assert headers["X-Shopify-Topic"] == "inventory_levels/update"
    payload = json.loads(body)
    assert (payload["inventory_item_id"], payload["location_id"], payload["available"]) == (
        1002,
        77,
        42,
    )


def test_a_shop_subscribed_to_levels_reports_every_change_as_a_level(shopify_simulator, receiver):
    name = f"sim-levels-{next(_shop_numbers)}"
    shopify_simulator.create_shop(
        name,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        location_id=77,
        level_webhooks=True,
    )
    shopify_simulator.add_items(
        name, [{"inventory_item_id": 1001, "variant_id": 2001, "sku": "A", "available": 10}]
    )

    shopify_simulator.place_order(name, [{"variant_id": 2001, "quantity": 2}])
    graphql(shopify_simulator, name, set_mutation(), set_input(quantity(1001, 6, None)))
    shopify_simulator.set_quantity(name, 1001, 4, notify=True)

    deliveries = receiver.wait_for(4)
    levels = sorted(
        (json.loads(body)["updated_at"], json.loads(body)["available"])
        for headers, body in deliveries
        if headers["X-Shopify-Topic"] == "inventory_levels/update"
    )
    assert [available for _, available in levels] == [8, 6, 4]  # one each, the edit's once
    assert sum(h["X-Shopify-Topic"] == "orders/create" for h, _ in deliveries) == 1


def test_level_webhooks_setting_is_a_boolean(shopify_simulator):
    with pytest.raises(AssertionError, match=r"400.*level_webhooks"):
        shopify_simulator.create_shop("sim-levels-bad", level_webhooks="yes")


def test_changes_and_requests_logs_page_by_sequence(shopify_simulator, shop):
    shopify_simulator.place_order(shop, [{"variant_id": 2001, "quantity": 1}])
    graphql(shopify_simulator, shop, set_mutation("log-key"), set_input(quantity(1001, 3, None)))
    changes = shopify_simulator.changes(shop)
    assert [(c["source"], c["available"]) for c in changes] == [("order", 9), ("api", 3)]
    assert changes[0]["time"] <= changes[1]["time"]
    assert shopify_simulator.changes(shop, since=changes[0]["seq"]) == changes[1:]
    [logged] = shopify_simulator.requests(shop)
    assert logged["headers"]["X-Shopify-Access-Token"] == f"shpat_{shop}"
    assert "log-key" in logged["body"] and logged["status"] == 200


def test_many_concurrent_orders_are_all_recorded_and_delivered(shopify_simulator, shop, receiver):
    with ThreadPoolExecutor(max_workers=105) as pool:
        answers = list(
            pool.map(
                lambda _: shopify_simulator.place_order(
                    shop, [{"variant_id": 2001, "quantity": 1}]
                ),
                range(105),
            )
        )
    assert {answer["delivery_status"] for answer in answers} == {200}
    assert len({answer["webhook_id"] for answer in answers}) == 105
    assert len(receiver.wait_for(105)) == 105
    assert shopify_simulator.items(shop)[1001]["available"] == 10 - 105
