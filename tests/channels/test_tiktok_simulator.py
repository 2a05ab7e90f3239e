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
