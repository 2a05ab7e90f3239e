"""The TikTok Shop simulator over HTTP: its request checks and its answers (§4, §6)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import requests

from channels.connectors.tiktok.client import sign_request
from tests.channels.tiktok_simulator import TikTokSimulatorClient


def _shop(simulator: TikTokSimulatorClient, **settings: Any) -> dict[str, Any]:
    name = f"sim-{time.monotonic_ns()}"
    shop = simulator.create_shop(name, **settings)
    simulator.add_skus(
        name,
        [
            {"sku_id": "S1", "product_id": "P1", "quantity": 5},
            {"sku_id": "S2", "product_id": "P1", "status": "FROZEN"},
            {"sku_id": "S3", "product_id": "P3", "warehouses": {"W1": 1, "W2": 2}},
        ],
    )
    return shop | {"app_secret": f"secret-{name}"}


def _call(
    simulator: TikTokSimulatorClient,
    shop: dict[str, Any],
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    **params: str,
) -> requests.Response:
    signed = sign_request(
        method=method,
        path=path,
        params=params,
        payload=payload,
        app_key=shop["app_key"],
        secret=shop["app_secret"],
        shop_cipher=shop["shop_cipher"],
        timestamp_s=int(time.time()),
    )
    return requests.request(
        method,
        f"{simulator.url}{path}",
        params=dict(signed.params),
        data=signed.body or None,
        headers={"x-tts-access-token": token or shop["access_token"]},
        timeout=10,
    )


def test_a_call_without_the_shop_cipher_or_with_a_bad_token_is_refused(tiktok_simulator):
    """No shop_cipher: code 106011 on HTTP 200; an unknown token: 401 and code 105002."""
    shop = _shop(tiktok_simulator)
    response = requests.post(
        f"{tiktok_simulator.url}/product/202309/inventory/search", json={}, timeout=10
    )
    assert (response.status_code, response.json()["code"]) == (200, 106011)
    response = _call(
        tiktok_simulator,
        shop,
        "POST",
        "/product/202309/inventory/search",
        {"sku_ids": ["S1"]},
        token="TTP_unknown",
    )
    assert (response.status_code, response.json()["code"]) == (401, 105002)


def test_a_stale_timestamp_is_refused(tiktok_simulator):
    """§6: a timestamp off by more than the skew allowed answers code 106003."""
    shop = _shop(tiktok_simulator, timestamp_skew_s=-1)
    response = _call(
        tiktok_simulator, shop, "POST", "/product/202309/inventory/search", {"sku_ids": ["S1"]}
    )
    assert response.json()["code"] == 106003


def test_an_update_reports_each_failed_sku_inside_a_code_zero_answer(tiktok_simulator):
    """§4.3: S2 not live and S9 unknown fail; S1 is applied; the answer is code 0."""
    shop = _shop(tiktok_simulator)
    payload = {
        "skus": [{"id": sku_id, "inventory": [{"quantity": 9}]} for sku_id in ("S1", "S2", "S9")]
    }
    answer = _call(
        tiktok_simulator, shop, "POST", "/product/202309/products/P1/inventory/update", payload
    ).json()
    assert answer["code"] == 0
    assert sorted(e["detail"]["sku_id"] for e in answer["data"]["errors"]) == ["S2", "S9"]
    assert tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] == 9


@pytest.mark.parametrize(
    ("inventory", "code"),
    [
        ([{"quantity": 1}], 17019004),
        ([{"warehouse_id": "W9", "quantity": 1}], 17019005),
        ([{"warehouse_id": "W1", "quantity": 99999}], 17019003),
        ([{"warehouse_id": "W1", "quantity": -1}], 17019003),
    ],
)
def test_an_update_needs_a_warehouse_where_several_and_a_quantity_below_99999(
    tiktok_simulator, inventory, code
):
    """§4.3: warehouse_id required for a SKU held in several; 0 <= quantity < 99999."""
    shop = _shop(tiktok_simulator)
    answer = _call(
        tiktok_simulator,
        shop,
        "POST",
        "/product/202309/products/P3/inventory/update",
        {"skus": [{"id": "S3", "inventory": inventory}]},
    ).json()
    assert answer["code"] == 0
    assert [error["code"] for error in answer["data"]["errors"]] == [code]


def test_a_search_of_more_than_600_sku_ids_is_refused(tiktok_simulator):
    """§4.4: at most 600 sku_ids a call."""
    shop = _shop(tiktok_simulator)
    answer = _call(
        tiktok_simulator,
        shop,
        "POST",
        "/product/202309/inventory/search",
        {"sku_ids": [f"S{n}" for n in range(601)]},
    ).json()
    assert answer["code"] != 0


def test_an_order_webhook_names_the_order_only_and_is_signed_in_authorization(
    tiktok_simulator,
):
    """§4.1: type 1 without lines, Authorization = hex HMAC(secret, app_key + body); the
    order detail has one line item per unit."""
    shop = _shop(tiktok_simulator)
    placed = tiktok_simulator.place_order(
        shop["shop"], [{"sku_id": "S1", "quantity": 2}], deliver=False
    )
    [delivery] = tiktok_simulator.webhooks(shop["shop"])
    body = json.dumps(delivery["payload"]).encode()
    assert delivery["payload"]["type"] == 1
    assert "line_items" not in delivery["payload"]["data"]
    expected = hmac.new(
        shop["app_secret"].encode(), shop["app_key"].encode() + body, hashlib.sha256
    ).hexdigest()
    assert delivery["headers"]["Authorization"] == expected
    answer = _call(
        tiktok_simulator, shop, "GET", "/order/202309/orders", ids=placed["order_id"]
    ).json()
    [order] = answer["data"]["orders"]
    assert [line["sku_id"] for line in order["line_items"]] == ["S1", "S1"]


def test_viral_mode_places_a_paced_burst_and_sells_only_what_the_shop_shows(tiktok_simulator):
    """A burst of 8 one-unit orders on a SKU showing 5: 5 placed, each announced by its
    type 1 webhook, 3 not placed (sold out); the burst answers at once and runs behind."""
    shop = _shop(tiktok_simulator)
    started = tiktok_simulator.start_viral(
        shop["shop"], sku_id="S1", orders=8, per_s=200, quantity=1
    )
    assert started["burst_id"] == 1

    deadline = time.monotonic() + 10
    while not (bursts := tiktok_simulator.viral_bursts(shop["shop"]))[0]["done"]:
        assert time.monotonic() < deadline, bursts
        time.sleep(0.05)

    [burst] = bursts
    assert (burst["placed"], burst["sold_out"]) == (5, 3)
    assert tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] == 0
    announced = [
        delivery["payload"]["data"]["order_id"]
        for delivery in tiktok_simulator.webhooks(shop["shop"])
        if delivery["payload"]["type"] == 1
    ]
    assert sorted(announced) == sorted(order_id for order_id, _ in burst["order_ids"])


def _search(
    simulator: TikTokSimulatorClient, shop: dict[str, Any], kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    answer = _call(simulator, shop, "POST", f"/return_refund/202309/{kind}/search", body).json()
    assert answer["code"] == 0, answer
    return answer["data"]


def test_a_partial_cancellation_gives_its_units_back_and_is_announced_by_type_11(
    tiktok_simulator,
):
    """Granted, the cancelled units go back to available; the type 11 webhook names the
    cancellation only; Search Cancellations (signed) lists its line items; the order
    detail shows those line items cancelled and the order still open."""
    shop = _shop(tiktok_simulator)
    tiktok_simulator.add_skus(shop["shop"], [{"sku_id": "S4", "quantity": 4}])
    order_id = tiktok_simulator.place_order(
        shop["shop"],
        [{"sku_id": "S1", "quantity": 3}, {"sku_id": "S4", "quantity": 2}],
        deliver=False,
    )["order_id"]
    cancelled = tiktok_simulator.cancel_lines(
        shop["shop"], order_id, [{"sku_id": "S1", "quantity": 1}], deliver=False
    )
    skus = tiktok_simulator.skus(shop["shop"])
    assert (skus["S1"]["available_quantity"], skus["S4"]["available_quantity"]) == (3, 2)
    assert skus["S1"]["warehouses"]["7068517275539719942"]["committed"] == 2
    announced = tiktok_simulator.webhooks(shop["shop"])[-1]["payload"]
    assert announced["type"] == 11
    assert announced["data"] == {
        "order_id": order_id,
        "cancel_id": cancelled["cancel_id"],
        "cancel_status": "CANCELLATION_REQUEST_SUCCESS",
        "cancellations_role": "BUYER",
        "update_time": announced["data"]["update_time"],
    }
    for body in ({"cancel_ids": [cancelled["cancel_id"]]}, {"order_ids": [order_id]}):
        [found] = _search(tiktok_simulator, shop, "cancellations", body)["cancellations"]
        assert found["cancel_status"] == "CANCELLATION_REQUEST_SUCCESS"
        assert [item["sku_id"] for item in found["cancel_line_items"]] == ["S1"]
    [order] = _call(tiktok_simulator, shop, "GET", "/order/202309/orders", ids=order_id).json()[
        "data"
    ]["orders"]
    assert order["status"] == "AWAITING_SHIPMENT"
    assert [(item["sku_id"], item["display_status"]) for item in order["line_items"]] == [
        ("S1", "CANCELLED"),
        ("S1", "AWAITING_SHIPMENT"),
        ("S1", "AWAITING_SHIPMENT"),
        ("S4", "AWAITING_SHIPMENT"),
        ("S4", "AWAITING_SHIPMENT"),
    ]
    refused = _call(
        tiktok_simulator,
        shop | {"app_secret": "wrong"},
        "POST",
        "/return_refund/202309/cancellations/search",
        {"order_ids": [order_id]},
    ).json()
    assert refused["code"] == 106001


def test_a_pending_cancellation_moves_nothing_until_granted_on_its_own(tiktok_simulator):
    """Pending, the units stay committed; ``then`` grants it later with a second type 11,
    and only then do the units come back. Cancelling the whole order afterwards gives back
    only what is still on it."""
    shop = _shop(tiktok_simulator)
    order_id = tiktok_simulator.place_order(
        shop["shop"], [{"sku_id": "S1", "quantity": 2}], deliver=False
    )["order_id"]
    tiktok_simulator.cancel_lines(
        shop["shop"],
        order_id,
        None,
        status="CANCELLATION_REQUEST_PENDING",
        then="CANCELLATION_REQUEST_SUCCESS",
        after_s=0.3,
        deliver=False,
    )
    assert tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] == 3
    deadline = time.monotonic() + 10
    while tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] != 4:
        assert time.monotonic() < deadline, "the pending cancellation was never granted"
        time.sleep(0.05)
    statuses = [
        delivery["payload"]["data"]["cancel_status"]
        for delivery in tiktok_simulator.webhooks(shop["shop"])
        if delivery["payload"]["type"] == 11
    ]
    assert statuses == ["CANCELLATION_REQUEST_PENDING", "CANCELLATION_REQUEST_SUCCESS"]
    tiktok_simulator.set_order_status(shop["shop"], order_id, "CANCELLED", deliver=False)
    assert tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] == 5


def test_a_return_is_announced_at_each_status_and_searched_by_return_id(tiktok_simulator):
    """Type 12 carries the return's status and type, never its line items; Search Returns
    answers ``return_orders`` with ``return_line_items``; the shop's stock does not move."""
    shop = _shop(tiktok_simulator)
    order_id = tiktok_simulator.place_order(
        shop["shop"], [{"sku_id": "S1", "quantity": 2}], deliver=False
    )["order_id"]
    opened = tiktok_simulator.open_return(
        shop["shop"], order_id, [{"sku_id": "S1", "quantity": 1}], deliver=False
    )
    for status in ("BUYER_SHIPPED_ITEM", "RETURN_OR_REFUND_REQUEST_COMPLETE"):
        tiktok_simulator.advance(
            shop["shop"], "returns", opened["return_id"], status, deliver=False
        )
    announced = [
        delivery["payload"]["data"]
        for delivery in tiktok_simulator.webhooks(shop["shop"])
        if delivery["payload"]["type"] == 12
    ]
    assert [(data["return_status"], data["return_type"]) for data in announced] == [
        ("RETURN_OR_REFUND_REQUEST_PENDING", "RETURN_AND_REFUND"),
        ("BUYER_SHIPPED_ITEM", "RETURN_AND_REFUND"),
        ("RETURN_OR_REFUND_REQUEST_COMPLETE", "RETURN_AND_REFUND"),
    ]
    assert all("return_line_items" not in data for data in announced)
    [found] = _search(tiktok_simulator, shop, "returns", {"return_ids": [opened["return_id"]]})[
        "return_orders"
    ]
    assert found["order_id"] == order_id
    assert [item["sku_id"] for item in found["return_line_items"]] == ["S1"]
    assert tiktok_simulator.skus(shop["shop"])["S1"]["available_quantity"] == 3
    with pytest.raises(AssertionError, match="409"):
        tiktok_simulator.advance(
            shop["shop"], "returns", opened["return_id"], "AWAITING_BUYER_SHIP"
        )
