"""REST API v1 of bundles: create, read and replace BOMs over HTTP with token auth."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

from bundles.models import BomLine
from inventory.models import Sku
from nventory import permissions
from tests import factories
from tests.bundles.helpers import closure, make_bundle

pytestmark = pytest.mark.urls("tests.bundles.urls")


@pytest.fixture
def api_client(db) -> APIClient:
    """A channel manager's token: bundles are theirs to edit."""
    user = factories.make_user(username="catalogue-bot", roles=[permissions.CHANNEL_MANAGER])
    return factories.api_client(user)


def url(name: str, **kwargs: Any) -> str:
    return reverse(f"bundles_api:{name}", kwargs=kwargs)


@pytest.fixture
def mug_and_tea(db) -> tuple[Sku, Sku]:
    mug, tea = factories.make_sku(code="MUG"), factories.make_sku(code="TEA")
    location = factories.make_location()
    factories.stock(mug, location, 7)
    factories.stock(tea, location, 5)
    return mug, tea


def test_create_bundle_answers_its_lines_and_availability(api_client, mug_and_tea):
    response = api_client.post(
        url("bundle-list"),
        {
            "code": "GIFT-SET",
            "name": "Winter gift set",
            "lines": [{"component": "MUG", "quantity": 2}, {"component": "TEA", "quantity": 1}],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["code"] == "GIFT-SET"
    assert body["lines"] == [
        {"component": "MUG", "quantity": 2},
        {"component": "TEA", "quantity": 1},
    ]
    assert body["available"] == 3
    assert closure(Sku.objects.get(code="GIFT-SET")) == {"MUG": 2, "TEA": 1}


def test_get_and_list_show_bundles_only(api_client, mug_and_tea):
    mug, tea = mug_and_tea
    make_bundle((mug, 2), (tea, 1), code="GIFT-SET")

    detail = api_client.get(url("bundle-detail", code="GIFT-SET"))
    listing = api_client.get(url("bundle-list"), {"search": "gift"})

    assert detail.status_code == 200
    assert detail.json()["available"] == 3
    assert listing.status_code == 200
    assert [row["code"] for row in listing.json()["results"]] == ["GIFT-SET"]
    assert api_client.get(url("bundle-list")).json()["count"] == 1


def test_put_replaces_the_bom(api_client, mug_and_tea):
    mug, tea = mug_and_tea
    make_bundle((mug, 2), (tea, 1), code="GIFT-SET")

    response = api_client.put(
        url("bundle-detail", code="GIFT-SET"),
        {"lines": [{"component": "TEA", "quantity": 2}]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["lines"] == [{"component": "TEA", "quantity": 2}]
    assert response.json()["available"] == 2
    assert closure(Sku.objects.get(code="GIFT-SET")) == {"TEA": 2}


def test_put_creating_a_cycle_is_a_400_on_lines(api_client, mug_and_tea):
    mug, _ = mug_and_tea
    inner = make_bundle((mug, 1), code="INNER")
    make_bundle((inner, 1), code="OUTER")

    response = api_client.put(
        url("bundle-detail", code="INNER"),
        {"lines": [{"component": "OUTER", "quantity": 1}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "lines": [
            "Bundle INNER cannot contain OUTER: OUTER already contains INNER (OUTER → INNER)."
        ]
    }
    assert closure(inner) == {"MUG": 1}


def test_put_bundle_into_itself_is_a_400(api_client, mug_and_tea):
    mug, _ = mug_and_tea
    make_bundle((mug, 1), code="KIT")

    response = api_client.put(
        url("bundle-detail", code="KIT"),
        {"lines": [{"component": "KIT", "quantity": 1}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"lines": ["Bundle KIT cannot contain itself."]}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [{"component": "NOPE", "quantity": 1}],
            {"lines": {"0": {"component": ["SKU 'NOPE' does not exist."]}}},
        ),
        (
            [{"component": "MUG", "quantity": 0}],
            {"lines": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}},
        ),
        ([], {"lines": {"non_field_errors": ["This list may not be empty."]}}),
        (
            [{"component": "MUG", "quantity": 1}, {"component": "MUG", "quantity": 2}],
            {"lines": ["MUG is listed twice; give it one line."]},
        ),
    ],
)
def test_create_with_bad_lines_is_a_400_and_saves_nothing(
    api_client, mug_and_tea, lines, expected
):
    response = api_client.post(
        url("bundle-list"), {"code": "KIT", "name": "Kit", "lines": lines}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == expected
    assert not Sku.objects.filter(code="KIT").exists()
    assert not BomLine.objects.exists()


def test_create_with_a_taken_code_is_a_400(api_client, mug_and_tea):
    response = api_client.post(
        url("bundle-list"),
        {"code": "MUG", "name": "Kit", "lines": [{"component": "TEA", "quantity": 1}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"code": ["A SKU with this code already exists."]}


def test_unknown_bundle_or_plain_sku_is_a_404(api_client, mug_and_tea):
    for code in ("NOPE", "MUG"):
        assert api_client.get(url("bundle-detail", code=code)).status_code == 404
        response = api_client.put(
            url("bundle-detail", code=code),
            {"lines": [{"component": "TEA", "quantity": 1}]},
            format="json",
        )
        assert response.status_code == 404


def test_anonymous_requests_are_refused(db):
    assert APIClient().get(url("bundle-list")).status_code == 401


def test_bundle_operations_generate_a_schema_without_warnings(tmp_path):
    """The spectacular gate over the site with the bundles API included."""
    GENERATOR_STATS.reset()
    target = tmp_path / "schema.yaml"
    try:
        call_command(
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--urlconf",
            "tests.bundles.urls",
            "--file",
            str(target),
        )
    finally:
        GENERATOR_STATS.reset()
    paths = yaml.safe_load(target.read_text())["paths"]
    assert set(paths["/api/v1/bundles/"]) == {"get", "post"}
    assert set(paths["/api/v1/bundles/{code}/"]) == {"get", "put"}
