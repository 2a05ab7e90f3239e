"""Admin for bundles: BOM lines inline, validated and saved by the bundles services."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from bundles.models import BomLine
from inventory.models import Sku
from tests import factories
from tests.bundles.helpers import closure, make_bundle

pytestmark = pytest.mark.django_db


def _url(view: str, *args: object) -> str:
    return reverse(f"admin:bundles_bundle_{view}", args=args)


def _form(bundle: Sku | None, lines: list[tuple[Sku, int]], **fields: Any) -> dict[str, Any]:
    """The POST body of the bundle form: its fields, and the inline replacing every line."""
    existing = list(BomLine.objects.filter(bundle=bundle)) if bundle else []
    data: dict[str, Any] = {
        "code": bundle.code if bundle else "NEW-KIT",
        "name": bundle.name if bundle else "New kit",
        "category": "",
        "is_active": "on",
        "bom_lines-TOTAL_FORMS": str(len(existing) + len(lines)),
        "bom_lines-INITIAL_FORMS": str(len(existing)),
        "bom_lines-MIN_NUM_FORMS": "0",
        "bom_lines-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, line in enumerate(existing):
        data.update(
            {
                f"bom_lines-{index}-id": str(line.pk),
                f"bom_lines-{index}-bundle": str(bundle.pk) if bundle else "",
                f"bom_lines-{index}-component": str(line.component_id),
                f"bom_lines-{index}-quantity": str(line.quantity),
                f"bom_lines-{index}-DELETE": "on",
            }
        )
    for offset, (component, quantity) in enumerate(lines, start=len(existing)):
        data.update(
            {
                f"bom_lines-{offset}-component": str(component.pk),
                f"bom_lines-{offset}-quantity": str(quantity),
            }
        )
    return data


@pytest.fixture
def stocked_parts(db) -> tuple[Sku, Sku]:
    mug, tea = factories.make_sku(code="MUG"), factories.make_sku(code="TEA")
    location = factories.make_location()
    factories.stock(mug, location, 7)
    factories.stock(tea, location, 5)
    return mug, tea


def test_changelist_lists_bundles_with_their_availability(admin_client: Client, stocked_parts):
    mug, tea = stocked_parts
    make_bundle((mug, 2), (tea, 1), code="GIFT-SET")

    response = admin_client.get(_url("changelist"))

    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [(row.code, row.available_units) for row in rows] == [("GIFT-SET", 3)]


def test_changelist_searches_by_component_and_filters_nesting(admin_client: Client, stocked_parts):
    mug, tea = stocked_parts
    gift_set = make_bundle((mug, 2), (tea, 1), code="GIFT-SET")
    make_bundle((gift_set, 1), code="HAMPER")
    make_bundle((tea, 4), code="TEA-PACK")

    def codes(params: dict[str, str]) -> list[str]:
        response = admin_client.get(_url("changelist"), params)
        assert response.status_code == 200
        return [row.code for row in response.context["cl"].result_list]

    assert codes({"q": "MUG"}) == ["GIFT-SET"]
    assert codes({"nested": "yes"}) == ["HAMPER"]
    assert codes({"nested": "no"}) == ["GIFT-SET", "TEA-PACK"]


def test_change_page_shows_the_bom_arithmetic(admin_client: Client, stocked_parts):
    mug, tea = stocked_parts
    gift_set = make_bundle((mug, 2), (tea, 1), code="GIFT-SET")

    response = admin_client.get(_url("change", gift_set.pk))

    assert response.status_code == 200
    content = response.content.decode()
    assert "MUG: ATS 7 / 2 per bundle = 3" in content
    assert "Available: the smallest, 3." in content


def test_adding_a_bundle_with_lines_builds_its_closure(admin_client: Client, stocked_parts):
    mug, tea = stocked_parts

    response = admin_client.post(_url("add"), _form(None, [(mug, 2), (tea, 1)]))

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    assert closure(Sku.objects.get(code="NEW-KIT")) == {"MUG": 2, "TEA": 1}


def test_editing_an_inner_bundle_in_the_admin_updates_outer_bundles(
    admin_client: Client, stocked_parts
):
    mug, tea = stocked_parts
    inner = make_bundle((mug, 1), code="INNER")
    outer = make_bundle((inner, 3), code="OUTER")

    response = admin_client.post(_url("change", inner.pk), _form(inner, [(tea, 2)]))

    assert response.status_code == 302
    assert closure(outer) == {"TEA": 6}


def _non_form_errors(response) -> list[str]:
    return [
        str(error)
        for inline in response.context["inline_admin_formsets"]
        for error in inline.formset.non_form_errors()
    ]


def test_cycle_is_a_form_error_and_saves_nothing(admin_client: Client, stocked_parts):
    mug, _ = stocked_parts
    a = make_bundle((mug, 1), code="A")
    c = make_bundle((a, 1), code="C")
    b = make_bundle((c, 1), code="B")

    response = admin_client.post(_url("change", a.pk), _form(a, [(b, 1)]))

    assert response.status_code == 200
    assert _non_form_errors(response) == [
        "Bundle A cannot contain B: B already contains A (B → C → A)."
    ]
    assert closure(a) == {"MUG": 1}
    assert list(BomLine.objects.filter(bundle=a).values_list("component__code", flat=True)) == [
        "MUG"
    ]


def test_bundle_inside_itself_is_a_form_error(admin_client: Client, stocked_parts):
    mug, _ = stocked_parts
    kit = make_bundle((mug, 1), code="KIT")

    response = admin_client.post(_url("change", kit.pk), _form(kit, [(mug, 1), (kit, 1)]))

    assert response.status_code == 200
    errors = " ".join(_non_form_errors(response))
    assert "Bundle KIT cannot contain itself." in errors
    assert closure(kit) == {"MUG": 1}


def test_bundle_without_lines_is_a_form_error(admin_client: Client, stocked_parts):
    response = admin_client.post(_url("add"), _form(None, []))

    assert response.status_code == 200
    assert _non_form_errors(response) == ["A bundle needs at least one BOM line."]
    assert not Sku.objects.filter(code="NEW-KIT").exists()
