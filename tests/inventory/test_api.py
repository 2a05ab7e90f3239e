"""REST API v1 of the inventory, over HTTP with token auth, on real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from inventory import services
from inventory.models import EventKind, InventoryEvent, Location, Reservation, Sku, StockLevel
from nventory import permissions
from tests import factories


@pytest.fixture
def user(db):
    """A client that keeps the catalogue and the stock and sells: every inventory route."""
    return factories.make_user(
        username="wms-bot", roles=[permissions.STOCK_CLERK, permissions.ORDER_CLIENT]
    )


@pytest.fixture
def api_client(user) -> APIClient:
    return factories.api_client(user)


@pytest.fixture
def other_location(db) -> Location:
    return factories.make_location()


def url(name: str, **kwargs: Any) -> str:
    return reverse(f"inventory_api:{name}", kwargs=kwargs)


def figures(sku: Sku, location: Location) -> tuple[int, int, int]:
    level = StockLevel.objects.filter(sku=sku, location=location).first()
    return (level.on_hand, level.committed, level.reserved) if level else (0, 0, 0)


def commit(sku: Sku, location: Location, quantity: int) -> None:
    services.commit_order(
        sku_id=sku.pk, location_id=location.pk, quantity=quantity, context=factories.context()
    )


# -----------------------------------------------------------------------------------------
# Authentication
# -----------------------------------------------------------------------------------------

ALL_ENDPOINTS = [
    ("get", "sku-list", {}),
    ("post", "sku-list", {}),
    ("get", "sku-detail", {"code": "X"}),
    ("get", "sku-stock", {"code": "X"}),
    ("get", "location-list", {}),
    ("post", "location-list", {}),
    ("get", "location-detail", {"code": "X"}),
    ("get", "event-list", {}),
    ("post", "receipt-create", {}),
    ("post", "adjustment-create", {}),
    ("post", "transfer-create", {}),
    ("post", "reservation-create", {}),
    ("get", "reservation-detail", {"reservation_id": 1}),
    ("post", "reservation-confirm", {"reservation_id": 1}),
    ("post", "reservation-release", {"reservation_id": 1}),
    ("post", "order-commit", {}),
    ("post", "order-cancel", {}),
    ("post", "order-ship", {}),
    ("post", "order-return", {}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "name", "kwargs"), ALL_ENDPOINTS)
def test_every_endpoint_answers_401_without_a_token(method, name, kwargs):
    """No credentials: 401 with a Token challenge, before any validation or lookup."""
    response = getattr(APIClient(), method)(url(name, **kwargs))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "detail" in response.json()


@pytest.mark.django_db
def test_a_wrong_token_is_401_and_changes_nothing(sku, location):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.post(
        url("receipt-create"),
        {"sku": sku.code, "location": location.code, "quantity": 3, "idempotency_key": "k"},
        format="json",
    )
    assert response.status_code == 401
    assert not InventoryEvent.objects.exists()


# -----------------------------------------------------------------------------------------
# SKUs and locations
# -----------------------------------------------------------------------------------------


def test_sku_list_is_paginated_ordered_by_code_and_searches_code_and_name(api_client):
    factories.make_sku(code="TEE-RED", name="Red shirt")
    factories.make_sku(code="MUG-1", name="Coffee mug")
    factories.make_sku(code="CAP-9", name="Tee cap")

    everything = api_client.get(url("sku-list")).json()
    assert everything["count"] == 3
    assert [row["code"] for row in everything["results"]] == ["CAP-9", "MUG-1", "TEE-RED"]

    found = api_client.get(url("sku-list"), {"search": "tee"}).json()
    assert [row["code"] for row in found["results"]] == ["CAP-9", "TEE-RED"]

    page = api_client.get(url("sku-list"), {"limit": 1, "offset": 1}).json()
    assert page["count"] == 3
    assert [row["code"] for row in page["results"]] == ["MUG-1"]
    assert page["next"] and page["previous"]


def test_sku_create_returns_201_and_the_sku(api_client):
    response = api_client.post(
        url("sku-list"), {"code": "TEE-BLU", "name": "Blue shirt"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["code"] == "TEE-BLU"
    assert body["name"] == "Blue shirt"
    assert body["category"] == ""
    assert body["is_active"] is True
    assert Sku.objects.get(code="TEE-BLU").name == "Blue shirt"


def test_sku_create_answers_400_with_a_message_per_field(api_client, sku):
    response = api_client.post(url("sku-list"), {"code": sku.code}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "name"}
    assert body["code"] == ["A SKU with this code already exists."]
    assert Sku.objects.count() == 1


def test_sku_code_with_a_slash_is_refused_because_it_could_not_be_addressed(api_client):
    response = api_client.post(url("sku-list"), {"code": "A/B", "name": "x"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["code"]
    assert not Sku.objects.exists()


def test_sku_detail_returns_the_sku_addressed_by_code(api_client, sku):
    response = api_client.get(url("sku-detail", code=sku.code))
    assert response.status_code == 200
    assert response.json()["code"] == sku.code
    assert response.json()["name"] == sku.name


def test_unknown_sku_detail_is_404_with_a_json_detail(api_client):
    response = api_client.get(url("sku-detail", code="NOPE"))
    assert response.status_code == 404
    assert response.json() == {
        "detail": "SKU 'NOPE' does not exist.",
        "code": "not_found",
        "sku": "NOPE",
    }


def test_location_list_create_and_detail(api_client, location):
    created = api_client.post(
        url("location-list"),
        {"code": "FBA-US", "name": "Amazon FBA US", "kind": "marketplace"},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["kind"] == "marketplace"
    assert Location.objects.get(code="FBA-US").kind == Location.Kind.MARKETPLACE_FULFILLED

    listed = api_client.get(url("location-list")).json()
    assert listed["count"] == 2
    assert {row["code"] for row in listed["results"]} == {"FBA-US", location.code}

    detail = api_client.get(url("location-detail", code="FBA-US"))
    assert detail.status_code == 200
    assert detail.json()["name"] == "Amazon FBA US"


def test_location_create_answers_400_for_an_unknown_kind(api_client):
    response = api_client.post(
        url("location-list"), {"code": "X1", "name": "X", "kind": "moon"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["kind"]
    assert not Location.objects.exists()


def test_unknown_location_detail_is_404(api_client):
    response = api_client.get(url("location-detail", code="NOPE"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# -----------------------------------------------------------------------------------------
# Stock
# -----------------------------------------------------------------------------------------


def test_sku_stock_shows_each_location_and_the_totals(api_client, sku, location):
    second = factories.make_location(code="ZZ-STORE", name="Store")
    factories.stock(sku, location, 10)
    factories.stock(sku, second, 4)
    commit(sku, location, 3)
    services.reserve_stock(
        sku_id=sku.pk, location_id=second.pk, quantity=1, context=factories.context()
    )

    response = api_client.get(url("sku-stock", code=sku.code))

    assert response.status_code == 200
    assert response.json() == {
        "sku": sku.code,
        "locations": [
            {
                "location": location.code,
                "name": location.name,
                "on_hand": 10,
                "committed": 3,
                "reserved": 0,
                "available": 7,
            },
            {
                "location": "ZZ-STORE",
                "name": "Store",
                "on_hand": 4,
                "committed": 0,
                "reserved": 1,
                "available": 3,
            },
        ],
        "totals": {"on_hand": 14, "committed": 3, "reserved": 1, "available": 10},
    }


def test_stock_of_unknown_sku_is_404(api_client):
    assert api_client.get(url("sku-stock", code="NOPE")).status_code == 404


# -----------------------------------------------------------------------------------------
# The ledger
# -----------------------------------------------------------------------------------------


def test_event_list_filters_by_sku_kind_and_location(api_client, sku, location, other_location):
    other_sku = factories.make_sku()
    factories.stock(sku, location, 5)
    factories.stock(sku, other_location, 5)
    factories.stock(other_sku, location, 5)
    commit(sku, location, 2)

    def codes(**filters: str) -> list[tuple[str, str, str]]:
        response = api_client.get(url("event-list"), filters)
        assert response.status_code == 200
        return [(e["sku"], e["location"], e["kind"]) for e in response.json()["results"]]

    assert codes(sku=sku.code) == [
        (sku.code, location.code, "order_committed"),
        (sku.code, other_location.code, "receipt"),
        (sku.code, location.code, "receipt"),
    ]
    assert codes(sku=sku.code, kind="receipt", location=location.code) == [
        (sku.code, location.code, "receipt")
    ]
    assert codes(location=location.code, kind="receipt") == [
        (other_sku.code, location.code, "receipt"),
        (sku.code, location.code, "receipt"),
    ]
    assert len(codes()) == 4


def test_event_list_is_paginated(api_client, sku, location):
    for _ in range(3):
        factories.stock(sku, location, 1)
    body = api_client.get(url("event-list"), {"limit": 2}).json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"] is not None


@pytest.mark.django_db(transaction=True)
def test_event_list_since_is_inclusive_and_until_exclusive(api_client, sku, location):
    """Each event commits on its own here, so the three have distinct created_at."""
    for _ in range(3):
        factories.stock(sku, location, 1)
    first, second, third = InventoryEvent.objects.order_by("id")
    assert first.created_at < second.created_at < third.created_at

    def ids(**filters: str) -> list[int]:
        response = api_client.get(url("event-list"), filters)
        assert response.status_code == 200
        return [event["id"] for event in response.json()["results"]]

    assert ids(since=second.created_at.isoformat()) == [third.pk, second.pk]
    assert ids(until=second.created_at.isoformat()) == [first.pk]
    assert ids(since=first.created_at.isoformat(), until=third.created_at.isoformat()) == [
        second.pk,
        first.pk,
    ]


def test_event_list_answers_400_for_bad_filters(api_client):
    response = api_client.get(
        url("event-list"), {"kind": "theft", "since": "yesterday", "until": "2024-13-01"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"kind", "since", "until"}


def test_event_list_answers_400_when_until_is_before_since(api_client):
    response = api_client.get(
        url("event-list"), {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert list(response.json()) == ["until"]


def test_event_list_filtered_by_unknown_sku_or_location_is_404(api_client):
    assert api_client.get(url("event-list"), {"sku": "NOPE"}).status_code == 404
    assert api_client.get(url("event-list"), {"location": "NOPE"}).status_code == 404


# -----------------------------------------------------------------------------------------
# Validation and unknown codes, across every stock-changing endpoint
# -----------------------------------------------------------------------------------------

STOCK_CHANGE_REQUIRED_FIELDS = {
    "receipt-create": {"sku", "location", "quantity", "idempotency_key"},
    "adjustment-create": {"sku", "location", "delta", "reason", "idempotency_key"},
    "transfer-create": {"sku", "from_location", "to_location", "quantity", "idempotency_key"},
    "reservation-create": {"sku", "location", "quantity", "idempotency_key"},
    "order-commit": {"sku", "location", "quantity", "idempotency_key"},
    "order-cancel": {"sku", "location", "quantity", "idempotency_key"},
    "order-ship": {"sku", "location", "quantity", "idempotency_key"},
    "order-return": {"sku", "location", "quantity", "idempotency_key", "restock"},
}


@pytest.mark.parametrize(("name", "required"), STOCK_CHANGE_REQUIRED_FIELDS.items())
def test_empty_body_is_400_naming_every_required_field(api_client, name, required):
    response = api_client.post(url(name), {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == required
    assert all(messages == ["This field is required."] for messages in body.values())


def _valid_payload(name: str, sku_code: str, location_code: str, other_code: str) -> dict:
    payload: dict[str, Any] = {
        "sku": sku_code,
        "location": location_code,
        "quantity": 1,
        "idempotency_key": f"{name}-1",
    }
    if name == "adjustment-create":
        payload = {**payload, "delta": 1, "reason": "count"}
        del payload["quantity"]
    if name == "transfer-create":
        payload = {**payload, "from_location": location_code, "to_location": other_code}
        del payload["location"]
    if name == "order-return":
        payload["restock"] = True
    return payload


@pytest.mark.parametrize("name", STOCK_CHANGE_REQUIRED_FIELDS)
def test_unknown_sku_is_404_and_changes_nothing(api_client, name, location, other_location):
    response = api_client.post(
        url(name), _valid_payload(name, "NOPE", location.code, other_location.code), format="json"
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "SKU 'NOPE' does not exist."
    assert not InventoryEvent.objects.exists()
    assert not StockLevel.objects.exists()


@pytest.mark.parametrize("name", STOCK_CHANGE_REQUIRED_FIELDS)
def test_unknown_location_is_404_and_changes_nothing(api_client, name, sku, location):
    # A transfer from a known location to an unknown one: the target is looked up too.
    known = location.code if name == "transfer-create" else "NOPE"
    response = api_client.post(
        url(name), _valid_payload(name, sku.code, known, "NOPE"), format="json"
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "Location 'NOPE' does not exist."
    assert not InventoryEvent.objects.exists()


@pytest.mark.parametrize("quantity", [0, -1, "two", 2_000_000_000])
def test_receipt_quantity_out_of_range_is_400(api_client, sku, location, quantity):
    response = api_client.post(
        url("receipt-create"),
        {"sku": sku.code, "location": location.code, "quantity": quantity, "idempotency_key": "k"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["quantity"]
    assert not InventoryEvent.objects.exists()


# -----------------------------------------------------------------------------------------
# Receipts, adjustments, transfers
# -----------------------------------------------------------------------------------------


def test_receipt_adds_to_on_hand_and_answers_201_with_the_event(api_client, user, sku, location):
    response = api_client.post(
        url("receipt-create"),
        {
            "sku": sku.code,
            "location": location.code,
            "quantity": 12,
            "idempotency_key": "po-1001-line-1",
            "external_reference": "PO-1001",
            "reason": "supplier delivery",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in ("kind", "sku", "location", "delta_on_hand")} == {
        "kind": "receipt",
        "sku": sku.code,
        "location": location.code,
        "delta_on_hand": 12,
    }
    assert (body["on_hand_after"], body["available_after"]) == (12, 12)
    assert (body["source"], body["actor"]) == ("api", "wms-bot")
    assert (body["external_reference"], body["reason"]) == ("PO-1001", "supplier delivery")
    assert body["idempotency_key"] == f"api:{user.pk}:po-1001-line-1"
    assert figures(sku, location) == (12, 0, 0)
    event = InventoryEvent.objects.get(pk=body["id"])
    assert (event.source, event.actor, event.external_reference) == ("api", "wms-bot", "PO-1001")


@pytest.mark.django_db(transaction=True)
def test_replayed_receipt_changes_stock_once_and_answers_the_same_event(api_client, sku, location):
    """Replay runs outside a test transaction: the service detects it by the unique key."""
    payload = {"sku": sku.code, "location": location.code, "quantity": 5, "idempotency_key": "r1"}
    first = api_client.post(url("receipt-create"), payload, format="json")
    second = api_client.post(url("receipt-create"), payload, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert figures(sku, location) == (5, 0, 0)
    assert InventoryEvent.objects.filter(sku=sku).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_key_reused_for_a_different_change_is_409(api_client, sku, location):
    payload = {"sku": sku.code, "location": location.code, "quantity": 5, "idempotency_key": "r2"}
    assert api_client.post(url("receipt-create"), payload, format="json").status_code == 201
    response = api_client.post(url("receipt-create"), {**payload, "quantity": 6}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert figures(sku, location) == (5, 0, 0)


def test_adjustment_changes_on_hand_and_records_the_reason(api_client, sku, location):
    factories.stock(sku, location, 10)
    response = api_client.post(
        url("adjustment-create"),
        {
            "sku": sku.code,
            "location": location.code,
            "delta": -3,
            "reason": "cycle count",
            "idempotency_key": "adj-1",
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["kind"] == "adjustment"
    assert response.json()["delta_on_hand"] == -3
    assert response.json()["reason"] == "cycle count"
    assert figures(sku, location) == (7, 0, 0)


def test_adjustment_of_zero_or_without_reason_is_400(api_client, sku, location):
    response = api_client.post(
        url("adjustment-create"),
        {
            "sku": sku.code,
            "location": location.code,
            "delta": 0,
            "reason": "  ",
            "idempotency_key": "adj-2",
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"delta", "reason"}
    assert body["delta"] == ["An adjustment must change the quantity."]


def test_adjustment_below_available_is_409_and_changes_nothing(api_client, sku, location):
    factories.stock(sku, location, 5)
    commit(sku, location, 4)
    events_before = InventoryEvent.objects.count()
    response = api_client.post(
        url("adjustment-create"),
        {
            "sku": sku.code,
            "location": location.code,
            "delta": -3,
            "reason": "damaged",
            "idempotency_key": "adj-3",
        },
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["available"], body["requested"]) == ("insufficient_stock", 1, 3)
    assert figures(sku, location) == (5, 4, 0)
    assert InventoryEvent.objects.count() == events_before


def test_transfer_moves_units_and_answers_both_events(
    api_client, user, sku, location, other_location
):
    factories.stock(sku, location, 8)
    response = api_client.post(
        url("transfer-create"),
        {
            "sku": sku.code,
            "from_location": location.code,
            "to_location": other_location.code,
            "quantity": 3,
            "idempotency_key": "tr-1",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["transfer_out"]["kind"], body["transfer_out"]["location"]) == (
        "transfer_out",
        location.code,
    )
    assert (body["transfer_in"]["kind"], body["transfer_in"]["location"]) == (
        "transfer_in",
        other_location.code,
    )
    assert body["transfer_out"]["idempotency_key"] == f"api:{user.pk}:tr-1:out"
    assert figures(sku, location) == (5, 0, 0)
    assert figures(sku, other_location) == (3, 0, 0)


def test_transfer_to_the_same_location_is_400(api_client, sku, location):
    factories.stock(sku, location, 8)
    response = api_client.post(
        url("transfer-create"),
        {
            "sku": sku.code,
            "from_location": location.code,
            "to_location": location.code,
            "quantity": 3,
            "idempotency_key": "tr-2",
        },
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["to_location"]
    assert figures(sku, location) == (8, 0, 0)


def test_transfer_of_sold_units_is_409_and_changes_neither_location(
    api_client, sku, location, other_location
):
    factories.stock(sku, location, 5)
    commit(sku, location, 4)
    response = api_client.post(
        url("transfer-create"),
        {
            "sku": sku.code,
            "from_location": location.code,
            "to_location": other_location.code,
            "quantity": 3,
            "idempotency_key": "tr-3",
        },
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["available"], body["requested"]) == ("insufficient_stock", 1, 3)
    assert figures(sku, location) == (5, 4, 0)
    assert figures(sku, other_location) == (0, 0, 0)
    assert not InventoryEvent.objects.filter(kind=EventKind.TRANSFER_IN).exists()


def test_transfer_of_more_than_on_hand_is_409(api_client, sku, location, other_location):
    """Below zero on hand is refused as an invalid change (no available/requested)."""
    factories.stock(sku, location, 2)
    response = api_client.post(
        url("transfer-create"),
        {
            "sku": sku.code,
            "from_location": location.code,
            "to_location": other_location.code,
            "quantity": 3,
            "idempotency_key": "tr-4",
        },
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_stock_change"
    assert figures(sku, location) == (2, 0, 0)


# -----------------------------------------------------------------------------------------
# Reservations
# -----------------------------------------------------------------------------------------


def _reserve(client: APIClient, sku: Sku, location: Location, quantity: int, key: str, **extra):
    return client.post(
        url("reservation-create"),
        {
            "sku": sku.code,
            "location": location.code,
            "quantity": quantity,
            "idempotency_key": key,
            **extra,
        },
        format="json",
    )


def test_reservation_holds_units_and_can_be_read_back(api_client, sku, location):
    factories.stock(sku, location, 5)
    response = _reserve(api_client, sku, location, 2, "cart-1", ttl_s=60, external_reference="C1")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["quantity"], body["sku"]) == ("active", 2, sku.code)
    assert body["external_reference"] == "C1"
    assert figures(sku, location) == (5, 0, 2)
    reservation = Reservation.objects.get(pk=body["id"])
    assert 55 <= (reservation.expires_at - reservation.created_at).total_seconds() <= 65

    detail = api_client.get(url("reservation-detail", reservation_id=body["id"]))
    assert detail.status_code == 200
    assert detail.json() == body


def test_replayed_reservation_returns_the_same_hold_once(api_client, sku, location):
    factories.stock(sku, location, 5)
    first = _reserve(api_client, sku, location, 2, "cart-2")
    second = _reserve(api_client, sku, location, 2, "cart-2")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] == first.json()["id"]
    assert figures(sku, location) == (5, 0, 2)
    assert Reservation.objects.count() == 1


def test_reservation_beyond_available_is_409_and_holds_nothing(api_client, sku, location):
    factories.stock(sku, location, 3)
    commit(sku, location, 2)
    response = _reserve(api_client, sku, location, 2, "cart-3")
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["available"], body["requested"]) == ("insufficient_stock", 1, 2)
    assert not Reservation.objects.exists()
    assert figures(sku, location) == (3, 2, 0)


def test_reservation_with_a_ttl_of_zero_is_400(api_client, sku, location):
    response = _reserve(api_client, sku, location, 1, "cart-4", ttl_s=0)
    assert response.status_code == 400
    assert list(response.json()) == ["ttl_s"]


def test_confirm_turns_the_hold_into_a_committed_order_once(api_client, sku, location):
    factories.stock(sku, location, 5)
    reservation_id = _reserve(api_client, sku, location, 2, "cart-5").json()["id"]

    first = api_client.post(url("reservation-confirm", reservation_id=reservation_id))
    second = api_client.post(
        url("reservation-confirm", reservation_id=reservation_id),
        {"idempotency_key": "confirm-again"},
        format="json",
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == second.json()["status"] == "confirmed"
    assert figures(sku, location) == (5, 2, 0)
    assert InventoryEvent.objects.filter(kind=EventKind.RESERVATION_CONFIRMED).count() == 1


def test_release_gives_the_units_back_and_a_released_hold_cannot_be_confirmed(
    api_client, sku, location
):
    factories.stock(sku, location, 5)
    reservation_id = _reserve(api_client, sku, location, 2, "cart-6").json()["id"]

    released = api_client.post(url("reservation-release", reservation_id=reservation_id))
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert figures(sku, location) == (5, 0, 0)

    confirmed = api_client.post(url("reservation-confirm", reservation_id=reservation_id))
    assert confirmed.status_code == 409
    assert confirmed.json()["status"] == "released"
    assert figures(sku, location) == (5, 0, 0)


@pytest.mark.parametrize(
    "name", ["reservation-detail", "reservation-confirm", "reservation-release"]
)
def test_unknown_reservation_is_404(api_client, name):
    method = api_client.get if name == "reservation-detail" else api_client.post
    response = method(url(name, reservation_id=999_999))
    assert response.status_code == 404
    assert response.json()["detail"] == "Reservation 999999 does not exist."


# -----------------------------------------------------------------------------------------
# Orders
# -----------------------------------------------------------------------------------------


def _order(client: APIClient, name: str, sku: Sku, location: Location, quantity: int, **extra):
    return client.post(
        url(name),
        {
            "sku": sku.code,
            "location": location.code,
            "quantity": quantity,
            "idempotency_key": f"{name}-{uuid.uuid4()}",
            **extra,
        },
        format="json",
    )


def test_order_commit_takes_units_from_available(api_client, sku, location):
    factories.stock(sku, location, 5)
    response = _order(api_client, "order-commit", sku, location, 2, external_reference="SO-1")
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["delta_committed"], body["shortfall"]) == (
        "order_committed",
        2,
        0,
    )
    assert body["external_reference"] == "SO-1"
    assert figures(sku, location) == (5, 2, 0)


def test_order_commit_beyond_available_is_409_and_changes_nothing(api_client, sku, location):
    factories.stock(sku, location, 2)
    events_before = InventoryEvent.objects.count()
    response = _order(api_client, "order-commit", sku, location, 3)
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["available"], body["requested"]) == ("insufficient_stock", 2, 3)
    assert body["detail"] == "Only 2 available; 3 requested."
    assert figures(sku, location) == (2, 0, 0)
    assert InventoryEvent.objects.count() == events_before


def test_order_cancel_gives_committed_units_back(api_client, sku, location):
    factories.stock(sku, location, 5)
    commit(sku, location, 3)
    response = _order(api_client, "order-cancel", sku, location, 2)
    assert response.status_code == 201
    assert response.json()["kind"] == "order_cancelled"
    assert figures(sku, location) == (5, 1, 0)


def test_order_cancel_of_more_than_committed_is_409(api_client, sku, location):
    factories.stock(sku, location, 5)
    response = _order(api_client, "order-cancel", sku, location, 1)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_stock_change"
    assert figures(sku, location) == (5, 0, 0)


def test_order_ship_takes_units_from_on_hand_and_committed(api_client, sku, location):
    factories.stock(sku, location, 5)
    commit(sku, location, 3)
    response = _order(api_client, "order-ship", sku, location, 3)
    assert response.status_code == 201
    assert response.json()["kind"] == "shipment"
    assert figures(sku, location) == (2, 0, 0)


@pytest.mark.parametrize(
    ("restock", "kind", "on_hand"),
    [(True, "return_restocked", 3), (False, "return_damaged", 2)],
)
def test_order_return_restocks_only_when_asked(api_client, sku, location, restock, kind, on_hand):
    factories.stock(sku, location, 2)
    response = _order(api_client, "order-return", sku, location, 1, restock=restock)
    assert response.status_code == 201
    assert response.json()["kind"] == kind
    assert figures(sku, location) == (on_hand, 0, 0)


def test_a_page_holds_at_most_a_thousand_rows_whatever_the_limit_asks(api_client):
    """?limit=1000000 on 1,001 SKUs answers 1,000 of them and a link to the rest."""
    Sku.objects.bulk_create(
        [Sku(code=f"BULK-{number:04d}", name=f"Bulk {number}") for number in range(1001)]
    )
    page = api_client.get(url("sku-list"), {"limit": 1_000_000}).json()
    assert page["count"] == 1001
    assert len(page["results"]) == 1000
    assert page["next"] is not None


def test_a_field_the_api_does_not_know_is_refused_by_name_and_nothing_is_created(api_client):
    """A misspelt option is a 400 naming it, never silently ignored."""
    answer = api_client.post(
        url("sku-list"), {"code": "NEW-1", "name": "New", "colour": "red"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["colour"] == ["Unknown field."]
    assert not Sku.objects.filter(code="NEW-1").exists()


def test_a_list_takes_its_paging_parameters_and_refuses_unknown_ones(api_client):
    """limit and offset page any list; a misspelt filter is a 400 naming it."""
    assert api_client.get(url("sku-list"), {"limit": 5, "offset": 0}).status_code == 200
    answer = api_client.get(url("sku-list"), {"serach": "tee"})
    assert answer.status_code == 400
    assert answer.json()["serach"] == ["Unknown field."]
