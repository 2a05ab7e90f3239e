"""The Shopify simulator driven by Shopify's own Python library (ShopifyAPI 12.7), over HTTP.

``shopify.Session`` builds Shopify's real URL, ``http://<shop>.myshopify.com:<port>/admin/api/
<version>/graphql.json``; urllib reaches the simulator through it as an HTTP proxy, and the
simulator takes the shop from the Host header. Each test asserts the answer Shopify
documents (CHANNEL_APIS.md §1, the changelogs and the 2026-01 error-code enum).
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import shopify

from tests.channels.conftest import ShopifySimulatorClient

_shop_numbers = itertools.count(1)
LOCATION = "gid://shopify/Location/77"
OTHER_LOCATION = "gid://shopify/Location/78"
ITEM = "gid://shopify/InventoryItem/1001"

Execute = Callable[..., dict[str, Any]]


@pytest.fixture
def shopify_api(shopify_simulator: ShopifySimulatorClient) -> Iterator[None]:
    """ShopifyAPI pointed at the simulator: plain HTTP on its port, the simulator as proxy."""
    port = urlsplit(shopify_simulator.url).port
    shopify.Session.setup(protocol="http", port=port)
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.ProxyHandler({"http": shopify_simulator.url}))
    )
    try:
        yield
    finally:
        urllib.request.install_opener(None)
        shopify.Session.setup(protocol="https", port=None)
        shopify.ShopifyResource.clear_session()


@pytest.fixture
def shop(shopify_simulator: ShopifySimulatorClient, shopify_api: None) -> str:
    name = f"lib{next(_shop_numbers)}"
    shopify_simulator.create_shop(name, location_id=77, other_location_ids=[78])
    shopify_simulator.add_items(
        name,
        [
            {"inventory_item_id": 1001, "variant_id": 2001, "sku": "A", "available": 10},
            {"inventory_item_id": 1002, "variant_id": 2002, "sku": "B", "available": 5},
            {
                "inventory_item_id": 1003,
                "variant_id": 2003,
                "sku": "C",
                "available": 1,
                "levels": [{"location_id": 78, "available": 4}],
            },
        ],
    )
    return name


def session_for(shop: str, api_version: str, token: str | None = None) -> None:
    session = shopify.Session(f"{shop}.myshopify.com", api_version, token or f"shpat_{shop}")
    shopify.ShopifyResource.activate_session(session)


@pytest.fixture
def gql(shop: str) -> Execute:
    """``gql(query, variables, version=...)``: ShopifyAPI's GraphQL().execute, parsed."""

    def execute(
        query: str, variables: dict[str, Any] | None = None, *, version: str = "2026-01"
    ) -> dict[str, Any]:
        session_for(shop, version)
        return dict(json.loads(shopify.GraphQL().execute(query, variables)))

    return execute


SET = """
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input)%s {
    inventoryAdjustmentGroup { reason changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}
"""


def set_mutation(key: str | None = None) -> str:
    return SET % (f' @idempotent(key: "{key}")' if key else "")


def set_input(*quantities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": "gid://nventory/Push/lib",
            "quantities": list(quantities),
            **extra,
        }
    }


def qty(item: str = ITEM, to: int = 3, location: str = LOCATION, **extra: Any) -> dict[str, Any]:
    return {"inventoryItemId": item, "locationId": location, "quantity": to, **extra}


def payload(answer: dict[str, Any]) -> dict[str, Any]:
    return dict(answer["data"]["inventorySetQuantities"])


def codes(answer: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload(answer)["userErrors"]]


# -- Selection sets and queries ---------------------------------------------------------------


def test_answers_carry_only_the_selected_fields_with_aliases_and_fragments(gql):
    answer = gql(
        """
        query {
          inventoryItem(id: "gid://shopify/InventoryItem/1001") {
            sku
            level: inventoryLevel(locationId: "gid://shopify/Location/77") { ...Counts }
          }
        }
        fragment Counts on InventoryLevel { quantities(names: ["available"]) { quantity } }
        """
    )
    assert answer["data"] == {
        "inventoryItem": {"sku": "A", "level": {"quantities": [{"quantity": 10}]}}
    }
    assert set(answer) == {"data", "extensions"}
    assert set(answer["extensions"]["cost"]) == {
        "requestedQueryCost",
        "actualQueryCost",
        "throttleStatus",
    }


def test_inventory_item_by_variable_with_levels_and_states(gql):
    answer = gql(
        """
        query Item($id: ID!) {
          inventoryItem(id: $id) {
            id tracked variant { id }
            inventoryLevels(first: 5) {
              edges { node { location { id } quantities(names: ["available", "committed",
                "on_hand", "incoming", "reserved", "damaged", "quality_control",
                "safety_stock"]) { name quantity } } }
            }
          }
        }
        """,
        {"id": "gid://shopify/InventoryItem/1003"},
    )
    item = answer["data"]["inventoryItem"]
    assert (item["id"], item["tracked"], item["variant"]) == (
        "gid://shopify/InventoryItem/1003",
        True,
        {"id": "gid://shopify/ProductVariant/2003"},
    )
    levels = {
        edge["node"]["location"]["id"]: {
            q["name"]: q["quantity"] for q in edge["node"]["quantities"]
        }
        for edge in item["inventoryLevels"]["edges"]
    }
    assert levels[LOCATION]["available"] == 1 and levels[OTHER_LOCATION]["available"] == 4
    assert levels[OTHER_LOCATION]["on_hand"] == 4 and levels[OTHER_LOCATION]["damaged"] == 0


def test_inventory_items_pages_and_filters(gql):
    first = gql(
        "{ inventoryItems(first: 2) { nodes { sku } pageInfo { hasNextPage endCursor } } }"
    )
    page = first["data"]["inventoryItems"]
    assert [n["sku"] for n in page["nodes"]] == ["A", "B"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = gql(
        "query($after: String) { inventoryItems(first: 2, after: $after) { nodes { sku } } }",
        {"after": page["pageInfo"]["endCursor"]},
    )
    assert [n["sku"] for n in rest["data"]["inventoryItems"]["nodes"]] == ["C"]
    by_sku = gql('{ inventoryItems(first: 5, query: "sku:B") { nodes { id } } }')
    assert by_sku["data"]["inventoryItems"]["nodes"] == [
        {"id": "gid://shopify/InventoryItem/1002"}
    ]


def test_location_inventory_levels_and_product_variant(gql):
    answer = gql(
        """
        {
          location(id: "gid://shopify/Location/78") {
            inventoryLevels(first: 10) {
              nodes { item { sku } quantities(names: ["available"]) { quantity } }
            }
          }
          productVariant(id: "gid://shopify/ProductVariant/2002") {
            sku inventoryItem { id }
          }
        }
        """
    )
    assert answer["data"]["location"]["inventoryLevels"]["nodes"] == [
        {"item": {"sku": "C"}, "quantities": [{"quantity": 4}]}
    ]
    assert answer["data"]["productVariant"] == {
        "sku": "B",
        "inventoryItem": {"id": "gid://shopify/InventoryItem/1002"},
    }


def test_nodes_answers_null_for_unknown_ids_and_types_each_node(gql):
    answer = gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on InventoryItem { sku } } }",
        {"ids": [ITEM, "gid://shopify/InventoryItem/9999", "gid://shopify/ProductVariant/2001"]},
    )
    assert answer["data"]["nodes"] == [
        {"__typename": "InventoryItem", "id": ITEM, "sku": "A"},
        None,
        {"__typename": "ProductVariant", "id": "gid://shopify/ProductVariant/2001"},
    ]


def test_unknown_field_is_shopifys_undefined_field_error(gql):
    answer = gql(f'{{ inventoryItem(id: "{ITEM}") {{ sku colour }} }}')
    assert "data" not in answer
    [error] = answer["errors"]
    assert error["message"] == "Field 'colour' doesn't exist on type 'InventoryItem'"
    assert error["extensions"]["code"] == "undefinedField"


def test_bad_token_is_401_with_shopifys_body(shop):
    session_for(shop, "2026-01", token="shpat_wrong")
    with pytest.raises(urllib.error.HTTPError) as raised:
        shopify.GraphQL().execute("{ location { id } }")
    assert raised.value.code == 401


# -- inventorySetQuantities by version ---------------------------------------------------------


def test_inline_literal_arguments_work_like_variables(gql, shopify_simulator, shop):
    answer = gql(
        f"""
        mutation {{
          inventorySetQuantities(input: {{
            name: "available", reason: "correction",
            quantities: [{{ inventoryItemId: "{ITEM}", locationId: "{LOCATION}",
                           quantity: 7, changeFromQuantity: 10 }}]
          }}) @idempotent(key: "literal-1") {{ userErrors {{ code }} }}
        }}
        """
    )
    assert answer["data"] == {"inventorySetQuantities": {"userErrors": []}}
    assert shopify_simulator.available(shop, 1001) == 7


def test_2026_01_honours_the_deprecated_compare_fields(gql, shopify_simulator, shop):
    """2026-01 keeps compareQuantity/ignoreCompareQuantity; changeFromQuantity, when given,
    overrides them (null included)."""
    stale = gql(set_mutation(), set_input(qty(compareQuantity=9)))
    assert codes(stale) == ["COMPARE_QUANTITY_STALE"]
    assert payload(stale)["userErrors"][0]["field"] == [
        "input",
        "quantities",
        "0",
        "compareQuantity",
    ]
    ignored = gql(set_mutation(), set_input(qty(to=8), ignoreCompareQuantity=True))
    assert codes(ignored) == []
    matched = gql(set_mutation(), set_input(qty(to=6, compareQuantity=8)))
    assert codes(matched) == []
    overridden = gql(set_mutation(), set_input(qty(to=5, compareQuantity=1, changeFromQuantity=6)))
    assert codes(overridden) == []
    assert shopify_simulator.available(shop, 1001) == 5
    stale_change = gql(set_mutation(), set_input(qty(to=4, changeFromQuantity=9)))
    assert codes(stale_change) == ["CHANGE_FROM_QUANTITY_STALE"]


def test_2026_04_refuses_a_call_without_the_idempotent_directive(gql, shopify_simulator, shop):
    answer = gql(set_mutation(), set_input(qty(changeFromQuantity=None)), version="2026-04")
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "@idempotent" in error["message"]
    assert answer["data"] == {"inventorySetQuantities": None}
    assert shopify_simulator.available(shop, 1001) == 10
    applied = gql(
        set_mutation("k-2604"), set_input(qty(changeFromQuantity=None)), version="2026-04"
    )
    assert codes(applied) == []
    assert shopify_simulator.available(shop, 1001) == 3


def test_2026_04_has_no_compare_quantity_and_requires_change_from(gql):
    removed = gql(
        set_mutation("k-old"),
        set_input(qty(compareQuantity=10, changeFromQuantity=None)),
        version="2026-04",
    )
    [error] = removed["errors"]
    assert error["extensions"]["code"] == "INVALID_VARIABLE"
    assert error["message"] == (
        "Variable $input of type InventorySetQuantitiesInput! was provided invalid value for "
        "quantities.0.compareQuantity (Field is not defined on InventoryQuantityInput)"
    )
    missing = gql(set_mutation("k-missing"), set_input(qty()), version="2026-04")
    assert missing["errors"][0]["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"


def test_up_to_2025_10_there_is_no_directive_and_no_change_from(gql):
    directive = gql(set_mutation("k"), set_input(qty(compareQuantity=10)), version="2025-10")
    assert directive["errors"][0]["message"] == "Directive @idempotent is not defined"
    change_from = gql(set_mutation(), set_input(qty(changeFromQuantity=10)), version="2025-10")
    assert change_from["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert "changeFromQuantity" in change_from["errors"][0]["message"]
    required = gql(set_mutation(), set_input(qty()), version="2025-10")
    assert codes(required) == ["COMPARE_QUANTITY_REQUIRED"]


def test_a_reused_key_replays_the_same_input_and_refuses_another(gql, shopify_simulator, shop):
    first = gql(set_mutation("k-reuse"), set_input(qty(to=8, changeFromQuantity=10)))
    shopify_simulator.set_quantity(shop, 1001, 10)
    replay = gql(set_mutation("k-reuse"), set_input(qty(to=8, changeFromQuantity=10)))
    assert replay["data"] == first["data"]
    assert shopify_simulator.available(shop, 1001) == 10  # not applied twice
    other = gql(set_mutation("k-reuse"), set_input(qty(to=2, changeFromQuantity=10)))
    assert payload(other) == {
        "inventoryAdjustmentGroup": None,
        "userErrors": [
            {
                "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                "field": None,
                "message": "The same idempotency key cannot be used with different operation "
                "parameters.",
            }
        ],
    }
    assert shopify_simulator.available(shop, 1001) == 10


def test_quantities_past_shopifys_cap_are_refused(gql, shopify_simulator, shop):
    too_high = gql(set_mutation(), set_input(qty(to=1_000_000_001, changeFromQuantity=None)))
    assert codes(too_high) == ["INVALID_QUANTITY_TOO_HIGH"]
    too_low = gql(set_mutation(), set_input(qty(to=-1_000_000_001, changeFromQuantity=None)))
    assert codes(too_low) == ["INVALID_QUANTITY_TOO_LOW"]
    not_an_int = gql(set_mutation(), set_input(qty(to=3_000_000_000, changeFromQuantity=None)))
    assert not_an_int["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert shopify_simulator.available(shop, 1001) == 10


def test_unknown_item_unknown_location_and_not_stocked_are_three_codes(
    gql, shopify_simulator, shop
):
    answer = gql(
        set_mutation(),
        set_input(
            qty(item="gid://shopify/InventoryItem/4242", changeFromQuantity=None),
            qty(location="gid://shopify/Location/5", changeFromQuantity=None),
            qty(location=OTHER_LOCATION, changeFromQuantity=None),
            qty(
                item="gid://shopify/InventoryItem/1003",
                location=OTHER_LOCATION,
                to=9,
                changeFromQuantity=4,
            ),
        ),
    )
    errors = payload(answer)["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("INVALID_INVENTORY_ITEM", ["input", "quantities", "0", "inventoryItemId"]),
        ("INVALID_LOCATION", ["input", "quantities", "1", "locationId"]),
        ("ITEM_NOT_STOCKED_AT_LOCATION", ["input", "quantities", "2", "locationId"]),
    ]
    # The call is atomic: the one good quantity was not applied either.
    assert shopify_simulator.items(shop)[1003]["other_levels"]["78"]["available"] == 4


# -- Harness behaviour seen through the library -------------------------------------------------


def test_reads_lag_writes_until_the_clock_passes_the_lag(gql, shopify_simulator, shop):
    shopify_simulator.update_shop(shop, read_lag_s=30)
    read = f'{{ inventoryItem(id: "{ITEM}") {{ inventoryLevel(locationId: "{LOCATION}") {{ quantities(names: ["available"]) {{ quantity }} }} }} }}'  # noqa: E501

    def shown() -> int:
        level = gql(read)["data"]["inventoryItem"]["inventoryLevel"]
        return int(level["quantities"][0]["quantity"])

    shopify_simulator.clock(freeze=True)
    try:
        assert codes(gql(set_mutation(), set_input(qty(to=2, changeFromQuantity=10)))) == []
        assert shopify_simulator.available(shop, 1001) == 2
        assert shown() == 10
        shopify_simulator.clock(advance_s=31)
        assert shown() == 2
    finally:
        shopify_simulator.clock(resume=True)


def test_every_call_is_in_the_request_log_with_its_endpoint(gql, shopify_simulator, shop):
    gql(set_mutation("logged"), set_input(qty(changeFromQuantity=None)))
    [logged] = shopify_simulator.requests(shop)
    assert logged["endpoint"] == "graphql:inventorySetQuantities"
    assert logged["headers"]["Host"].startswith(f"{shop}.myshopify.com")
    assert logged["path"] == "/admin/api/2026-01/graphql.json"
    assert '@idempotent(key: "logged")' in json.loads(logged["body"])["query"]
    assert logged["status"] == 200


def test_fault_on_one_endpoint_spares_the_others(gql, shopify_simulator, shop):
    shopify_simulator.faults(shop, endpoint="graphql:inventorySetQuantities", fail_next=1)
    assert gql(f'{{ inventoryItem(id: "{ITEM}") {{ sku }} }}')["data"]
    with pytest.raises(urllib.error.HTTPError) as raised:
        gql(set_mutation(), set_input(qty(changeFromQuantity=None)))
    assert raised.value.code == 503
    assert codes(gql(set_mutation(), set_input(qty(changeFromQuantity=None)))) == []
