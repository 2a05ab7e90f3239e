"""Hostile input to the API: every refusal a JSON body with its code, every limit held.

Bodies over the cap, nesting beyond the bound, values of the wrong JSON type, paging and
filter parameters out of range, ids that are not integers, quantities beyond the one
maximum (and stock figures that would pass it), BOMs with too many lines, throttling.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.test import Client
from django.urls import reverse

from bundles import services as bundle_services
from bundles.models import BomLine
from inventory import services
from inventory.models import MAX_QUANTITY, InventoryEvent, Sku, StockLevel
from nventory import errors
from nventory.parsers import MAX_JSON_DEPTH
from nventory.throttling import FailOpenUserRateThrottle
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def sku(db):
    return factories.make_sku(code="LIM-1")


@pytest.fixture
def location(db):
    return factories.make_location(code="LIM-WH")


def post_json(client, url: str, body: object, **extra):
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)


def assert_error(answer, status: int, code: str) -> dict:
    """A JSON error body with the status, a message and the stable code."""
    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/json"
    body = json.loads(answer.content)
    assert body["code"] == code and body["detail"], body
    return body


def receipt(sku, location, quantity, key: str | None = None) -> dict:
    return {
        "sku": sku.code,
        "location": location.code,
        "quantity": quantity,
        "idempotency_key": key or uuid.uuid4().hex,
    }


# -----------------------------------------------------------------------------------------
# Bodies
# -----------------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_a_413_in_json_and_nothing_is_created(
    authorised_api_client, settings
):
    settings.API_MAX_BODY_BYTES = 10_000
    body = {"code": "BIG-1", "name": "x" * 20_000}
    answer = post_json(authorised_api_client, "/api/v1/skus/", body)
    assert_error(answer, 413, "body_too_large")
    assert not Sku.objects.filter(code="BIG-1").exists()


def test_django_own_refusals_of_a_request_are_json_under_the_api(rf):
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE read outside the API's parser, or any other
    request Django itself refuses, is answered in JSON under /api/, never an HTML page."""
    too_big = errors.bad_request(rf.post("/api/v1/skus/"), RequestDataTooBig())
    assert_error(too_big, 413, "body_too_large")
    malformed = errors.bad_request(rf.get("/api/v1/skus/"), SuspiciousOperation())
    assert_error(malformed, 400, "bad_request")
    forbidden = errors.permission_denied(rf.get("/api/v1/skus/"), PermissionDenied())
    assert_error(forbidden, 403, "permission_denied")
    assert b"<html" in errors.bad_request(rf.get("/admin/"), SuspiciousOperation()).content


def test_a_body_nested_beyond_the_bound_is_a_400_parse_error(authorised_api_client):
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        nested = "[" * depth + "]" * depth
        answer = authorised_api_client.post(
            "/api/v1/skus/", data=nested, content_type="application/json"
        )
        body = assert_error(answer, 400, "parse_error")
        assert "nested" in body["detail"]


def test_nan_and_malformed_json_are_400_parse_errors(authorised_api_client):
    for raw in ('{"code": NaN}', '{"code": "A", ', "\xff"):
        answer = authorised_api_client.post(
            "/api/v1/skus/", data=raw, content_type="application/json"
        )
        assert_error(answer, 400, "parse_error")


def test_a_form_body_is_refused_415_the_api_takes_json(authorised_api_client):
    answer = authorised_api_client.post(
        "/api/v1/skus/", data="code=A&name=B", content_type="application/x-www-form-urlencoded"
    )
    assert_error(answer, 415, "unsupported_media_type")


def test_a_value_of_another_json_type_is_a_400_naming_its_field(
    authorised_api_client, sku, location
):
    """ "5" is not a number, 1 is not true, 5 is not a code: refused, nothing changes."""
    for field, value in (("quantity", "5"), ("quantity", 5.0), ("quantity", True)):
        answer = post_json(
            authorised_api_client, "/api/v1/receipts/", {**receipt(sku, location, 1), field: value}
        )
        assert answer.status_code == 400
        assert answer.json()[field] == ["Expected a whole number."]
    answer = post_json(
        authorised_api_client, "/api/v1/skus/", {"code": 5, "name": "n", "is_active": 1}
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "code": ["Expected a string."],
        "is_active": ["Expected true or false."],
    }
    assert not InventoryEvent.objects.exists()


# -----------------------------------------------------------------------------------------
# Errors in JSON, with their codes
# -----------------------------------------------------------------------------------------


def test_every_refusal_outside_a_view_is_json_with_its_code(authorised_api_client):
    assert_error(authorised_api_client.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error(authorised_api_client.get("/api/v1/reservations/abc/"), 404, "not_found")
    assert_error(authorised_api_client.get("/api/v1/skus/A%00B/"), 404, "not_found")
    answer = authorised_api_client.delete("/api/v1/skus/")
    assert_error(answer, 405, "method_not_allowed")
    assert "GET" in answer["Allow"]
    assert_error(Client().get("/api/v1/skus/"), 401, "not_authenticated")
    assert_error(
        Client(HTTP_AUTHORIZATION="Token not-a-token").get("/api/v1/skus/"),
        401,
        "authentication_failed",
    )


def test_an_id_too_large_for_any_row_is_a_404_in_json(authorised_api_client):
    for reservation_id in (2**63, 10**30):
        answer = authorised_api_client.get(f"/api/v1/reservations/{reservation_id}/")
        assert_error(answer, 404, "not_found")
    answer = authorised_api_client.post(f"/api/v1/dead-letters/{2**63}/replay/")
    assert_error(answer, 404, "not_found")


def test_a_404_of_a_view_says_not_found_with_its_code(authorised_api_client):
    assert_error(authorised_api_client.get("/api/v1/listings/1/explanation/"), 404, "not_found")
    assert_error(authorised_api_client.get("/api/v1/skus/NOPE/"), 404, "not_found")


def test_too_many_requests_is_a_429_in_json_with_retry_after(authorised_api_client, monkeypatch):
    monkeypatch.setattr(FailOpenUserRateThrottle, "rate", "2/hour", raising=False)
    statuses = [authorised_api_client.get("/api/v1/skus/").status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    answer = authorised_api_client.get("/api/v1/skus/")
    assert_error(answer, 429, "throttled")
    assert int(answer["Retry-After"]) > 0


# -----------------------------------------------------------------------------------------
# Paging and filters
# -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "1" * 5000}, None),
        ({"offset": "-1"}, "offset"),
        ({"offset": str(10**12)}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_a_paging_parameter_out_of_range_is_a_400_naming_it(authorised_api_client, query, name):
    answer = authorised_api_client.get("/api/v1/skus/", query)
    if name is None:  # a limit beyond any number is still a page of at most 1,000
        assert answer.status_code == 200
        return
    assert answer.status_code == 400
    assert list(answer.json()) == [name]


@pytest.mark.parametrize(
    ("url", "query", "name"),
    [
        ("/api/v1/events/", {"until": ""}, "until"),
        ("/api/v1/events/", {"kind": ""}, "kind"),
        ("/api/v1/dead-letters/", {"status": "nope"}, "status"),
        ("/api/v1/dead-letters/", {"status": ""}, "status"),
        ("/api/v1/dead-letters/", {"colour": "red"}, "colour"),
        ("/api/v1/bundles/", {"serach": "kit"}, "serach"),
        ("/api/v1/channels/", {"slug": "x"}, "slug"),
        ("/api/v1/oversell-incidents/", {"sku": "x"}, "sku"),
        ("/api/v1/locations/", {"kind": "store"}, "kind"),
    ],
)
def test_a_filter_that_is_blank_unknown_or_out_of_range_is_a_400_naming_it(
    authorised_api_client, url, query, name
):
    answer = authorised_api_client.get(url, query)
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == [name]


def test_a_blank_search_still_means_everything(authorised_api_client, sku):
    answer = authorised_api_client.get("/api/v1/skus/", {"search": ""})
    assert answer.status_code == 200
    assert answer.json()["count"] == 1


# -----------------------------------------------------------------------------------------
# Quantities: one maximum, everywhere
# -----------------------------------------------------------------------------------------


def test_a_quantity_beyond_the_maximum_is_a_400_from_the_api(authorised_api_client, sku, location):
    for quantity in (MAX_QUANTITY + 1, 2**31, 2**63, 10**30):
        answer = post_json(
            authorised_api_client, "/api/v1/receipts/", receipt(sku, location, quantity)
        )
        assert answer.status_code == 400
        assert "quantity" in answer.json()
    assert not InventoryEvent.objects.exists()


def test_receipts_that_would_take_on_hand_beyond_the_maximum_are_a_409_not_a_500(
    authorised_api_client, sku, location
):
    """The third receipt of MAX_QUANTITY would overflow a 32-bit column without the bound:
    it is refused with the figures, and stock stays as the first one left it."""
    first = post_json(
        authorised_api_client, "/api/v1/receipts/", receipt(sku, location, MAX_QUANTITY)
    )
    assert first.status_code == 201
    for _ in range(2):
        answer = post_json(
            authorised_api_client, "/api/v1/receipts/", receipt(sku, location, MAX_QUANTITY)
        )
        body = assert_error(answer, 409, "invalid_stock_change")
        assert str(MAX_QUANTITY) in body["detail"]
    level = StockLevel.objects.get(sku=sku, location=location)
    assert level.on_hand == MAX_QUANTITY
    assert InventoryEvent.objects.count() == 1


def test_services_refuse_a_change_beyond_the_maximum_whoever_calls_them(sku, location):
    with pytest.raises(services.QuantityOutOfRange):
        services.receive_stock(
            sku_id=sku.pk,
            location_id=location.pk,
            quantity=MAX_QUANTITY + 1,
            context=factories.context(),
        )
    with pytest.raises(services.QuantityOutOfRange):
        services.adjust_stock(
            sku_id=sku.pk,
            location_id=location.pk,
            delta=-(2**40),
            context=factories.context(reason="count"),
        )
    factories.stock(sku, location, MAX_QUANTITY)
    with pytest.raises(services.InvalidStockChange):
        services.receive_stock(
            sku_id=sku.pk, location_id=location.pk, quantity=1, context=factories.context()
        )
    assert StockLevel.objects.get(sku=sku, location=location).on_hand == MAX_QUANTITY


def test_a_bundle_sale_whose_components_pass_the_maximum_is_refused(location):
    part = factories.make_sku()
    factories.stock(part, location, 10)
    kit = bundle_services.create_bundle(
        code="LIM-KIT", name="Kit", category="", lines=[(part, bundle_services.MAX_LINE_QUANTITY)]
    )
    answer_quantity = MAX_QUANTITY // bundle_services.MAX_LINE_QUANTITY + 1
    with pytest.raises(errors.ApplicationError):
        bundle_services.commit_sku(
            sku_id=kit.pk,
            location_id=location.pk,
            quantity=answer_quantity,
            context=factories.context(),
            allow_shortfall=True,
        )
    assert StockLevel.objects.get(sku=part, location=location).committed == 0


# -----------------------------------------------------------------------------------------
# BOM lines
# -----------------------------------------------------------------------------------------


def test_a_bom_over_the_line_cap_is_refused_by_the_api_and_the_service(authorised_api_client):
    parts = [factories.make_sku() for _ in range(bundle_services.MAX_BOM_LINES + 1)]
    lines = [{"component": part.code, "quantity": 1} for part in parts]
    answer = post_json(
        authorised_api_client,
        reverse("bundles_api:bundle-list"),
        {"code": "BIG-KIT", "name": "Big kit", "lines": lines},
    )
    assert answer.status_code == 400
    assert "lines" in answer.json()
    with pytest.raises(bundle_services.BomError, match="at most"):
        bundle_services.create_bundle(
            code="BIG-KIT", name="Big kit", category="", lines=[(part, 1) for part in parts]
        )
    assert not BomLine.objects.exists()
    fits = post_json(
        authorised_api_client,
        reverse("bundles_api:bundle-list"),
        {"code": "FULL-KIT", "name": "Kit", "lines": lines[: bundle_services.MAX_BOM_LINES]},
    )
    assert fits.status_code == 201, fits.content
