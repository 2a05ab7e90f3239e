"""Bills of materials: the closure table, cycle refusal and bundle stock changes."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from bundles import selectors, services
from bundles.models import BomLine, BundleComponent
from inventory import services as inventory_services
from inventory.models import EventKind, InventoryEvent
from nventory.errors import ApplicationError
from tests import factories
from tests.bundles.helpers import closure, figures, make_bundle

pytestmark = pytest.mark.django_db


# -----------------------------------------------------------------------------------------
# Availability
# -----------------------------------------------------------------------------------------


def test_gift_set_availability_is_min_of_floor_component_over_quantity():
    """2 x A and 1 x B with 7 A and 5 B: min(floor(7/2), 5) = 3."""
    a, b = factories.make_sku(), factories.make_sku()
    location = factories.make_location()
    factories.stock(a, location, 7)
    factories.stock(b, location, 5)
    gift_set = make_bundle((a, 2), (b, 1))

    assert selectors.bundle_available(bundle_id=gift_set.pk, location_ids=[location.pk]) == 3
    assert selectors.bundle_available(bundle_id=gift_set.pk, location_ids=None) == 3


def test_nested_bundle_multiplies_quantities_through_each_level():
    """An outer bundle of 2 inner bundles (3 x A each) and 1 x A directly needs 7 A."""
    a, b = factories.make_sku(code="A"), factories.make_sku(code="B")
    location = factories.make_location()
    factories.stock(a, location, 20)
    factories.stock(b, location, 9)
    inner = make_bundle((a, 3), (b, 1))
    outer = make_bundle((inner, 2), (a, 1))

    assert closure(outer) == {"A": 7, "B": 2}
    assert selectors.bundle_available(bundle_id=outer.pk, location_ids=[location.pk]) == 2
    assert selectors.expand(sku_id=outer.pk, quantity=3) == [(a.pk, 21), (b.pk, 6)]


def test_availability_sums_only_the_given_locations():
    a = factories.make_sku()
    here, there = factories.make_location(), factories.make_location()
    factories.stock(a, here, 3)
    factories.stock(a, there, 4)
    pair = make_bundle((a, 2))

    assert selectors.bundle_available(bundle_id=pair.pk, location_ids=[here.pk]) == 1
    assert selectors.bundle_available(bundle_id=pair.pk, location_ids=[here.pk, there.pk]) == 3
    assert selectors.bundle_available(bundle_id=pair.pk, location_ids=[]) == 0
    assert selectors.bundle_availabilities(bundle_ids=[pair.pk], location_ids=[there.pk]) == {
        pair.pk: 2
    }


def test_component_without_stock_row_makes_bundle_unavailable():
    a, never_stocked = factories.make_sku(), factories.make_sku()
    location = factories.make_location()
    factories.stock(a, location, 10)
    bundle = make_bundle((a, 1), (never_stocked, 1))

    assert selectors.bundle_available(bundle_id=bundle.pk, location_ids=[location.pk]) == 0


def test_sku_without_lines_has_no_bundle_availability_and_expands_to_itself():
    plain = factories.make_sku()
    location = factories.make_location()
    factories.stock(plain, location, 5)

    assert selectors.bundle_available(bundle_id=plain.pk, location_ids=None) == 0
    assert selectors.expand(sku_id=plain.pk, quantity=4) == [(plain.pk, 4)]


def test_one_component_at_zero_zeroes_every_bundle_containing_it():
    """The article's edge case: direct and nested containers all drop to 0."""
    shared, other = factories.make_sku(), factories.make_sku()
    location = factories.make_location()
    factories.stock(shared, location, 1)
    factories.stock(other, location, 50)
    direct = make_bundle((shared, 1), (other, 2))
    nested = make_bundle((direct, 1), (other, 1))
    unrelated = make_bundle((other, 5))

    inventory_services.commit_order(
        sku_id=shared.pk, location_id=location.pk, quantity=1, context=factories.context()
    )

    assert selectors.dependent_bundle_ids(sku_ids=[shared.pk]) == {direct.pk, nested.pk}
    availability = selectors.bundle_availabilities(
        bundle_ids=[direct.pk, nested.pk, unrelated.pk], location_ids=[location.pk]
    )
    assert availability == {direct.pk: 0, nested.pk: 0, unrelated.pk: 10}


def test_oversold_component_counts_as_zero_not_negative():
    a = factories.make_sku()
    location = factories.make_location()
    factories.stock(a, location, 1)
    bundle = make_bundle((a, 2))
    inventory_services.commit_order(
        sku_id=a.pk,
        location_id=location.pk,
        quantity=4,
        context=factories.context(),
        allow_shortfall=True,
    )

    assert selectors.bundle_available(bundle_id=bundle.pk, location_ids=None) == 0
    [step] = selectors.explain_bundle(bundle_id=bundle.pk, location_ids=None).steps
    assert (step.ats, step.bundles) == (-3, 0)
    assert "negative counts as 0" in step.label


def test_explanation_shows_each_components_arithmetic():
    a, b = factories.make_sku(code="MUG"), factories.make_sku(code="TEA")
    location = factories.make_location()
    factories.stock(a, location, 7)
    factories.stock(b, location, 5)
    gift_set = make_bundle((a, 2), (b, 1))

    explanation = selectors.explain_bundle(bundle_id=gift_set.pk, location_ids=[location.pk])

    assert explanation.available == 3
    assert [step.label for step in explanation.steps] == [
        "MUG: ATS 7 / 2 per bundle = 3",
        "TEA: ATS 5 / 1 per bundle = 5",
    ]


# -----------------------------------------------------------------------------------------
# The closure table
# -----------------------------------------------------------------------------------------


def test_editing_an_inner_bundle_updates_every_outer_bundle():
    a, b, c = (factories.make_sku(code=code) for code in "ABC")
    inner = make_bundle((a, 1))
    middle = make_bundle((inner, 2), (b, 1))
    outer = make_bundle((middle, 3))
    sibling = make_bundle((inner, 1))

    services.set_bom(bundle=inner, lines=[(a, 2), (c, 1)])

    assert closure(inner) == {"A": 2, "C": 1}
    assert closure(middle) == {"A": 4, "B": 1, "C": 2}
    assert closure(outer) == {"A": 12, "B": 3, "C": 6}
    assert closure(sibling) == {"A": 2, "C": 1}
    assert selectors.dependent_bundle_ids(sku_ids=[c.pk]) == {
        inner.pk,
        middle.pk,
        outer.pk,
        sibling.pk,
    }


def test_removing_a_line_removes_its_leaves_from_every_container():
    a, b = factories.make_sku(code="A"), factories.make_sku(code="B")
    inner = make_bundle((a, 1), (b, 1))
    outer = make_bundle((inner, 1))

    services.set_bom(bundle=inner, lines=[(a, 3)])

    assert closure(outer) == {"A": 3}
    assert selectors.dependent_bundle_ids(sku_ids=[b.pk]) == set()


def test_a_sku_held_directly_and_through_a_nested_bundle_counts_both_ways():
    a = factories.make_sku(code="A")
    inner = make_bundle((a, 2))
    outer = make_bundle((inner, 1), (a, 1))

    assert closure(outer) == {"A": 3}


def test_bundle_emptied_of_lines_becomes_a_leaf_of_its_containers():
    a = factories.make_sku(code="A")
    inner = make_bundle((a, 1), code="INNER")
    outer = make_bundle((inner, 2))

    services.set_bom(bundle=inner, lines=[])

    assert closure(inner) == {}
    assert closure(outer) == {"INNER": 2}


def test_closure_rows_are_leaves_only():
    a = factories.make_sku()
    inner = make_bundle((a, 1))
    outer = make_bundle((inner, 1))

    leaf_ids = set(BundleComponent.objects.values_list("component_id", flat=True))
    assert leaf_ids == {a.pk}
    assert set(BundleComponent.objects.values_list("bundle_id", flat=True)) == {
        inner.pk,
        outer.pk,
    }


# -----------------------------------------------------------------------------------------
# Refused BOMs
# -----------------------------------------------------------------------------------------


def test_bundle_cannot_contain_itself():
    a = factories.make_sku()
    bundle = make_bundle((a, 1), code="KIT")

    with pytest.raises(services.BomError, match="Bundle KIT cannot contain itself"):
        services.set_bom(bundle=bundle, lines=[(a, 1), (bundle, 1)])
    assert list(BomLine.objects.filter(bundle=bundle).values_list("component_id", flat=True)) == [
        a.pk
    ]


def test_direct_cycle_is_refused_naming_its_path():
    a = factories.make_sku(code="A")
    x = make_bundle((a, 1), code="X")
    y = make_bundle((x, 1), code="Y")

    with pytest.raises(services.BomError) as refused:
        services.set_bom(bundle=x, lines=[(y, 1)])

    assert refused.value.message == "Bundle X cannot contain Y: Y already contains X (Y → X)."
    assert closure(x) == {"A": 1}


def test_nested_cycle_is_refused_naming_its_path():
    leaf = factories.make_sku(code="LEAF")
    a = make_bundle((leaf, 1), code="A")
    c = make_bundle((a, 1), code="C")
    b = make_bundle((c, 2), code="B")

    with pytest.raises(services.BomError) as refused:
        services.set_bom(bundle=a, lines=[(leaf, 1), (b, 1)])

    assert refused.value.message == (
        "Bundle A cannot contain B: B already contains A (B → C → A)."
    )
    assert BomLine.objects.filter(bundle=a).count() == 1


def test_plain_sku_used_in_a_bundle_cannot_become_a_bundle_of_that_bundle():
    """A was a stock-bearing leaf of KIT; giving A a BOM containing KIT is a cycle."""
    a = factories.make_sku(code="A")
    kit = make_bundle((a, 1), code="KIT")

    with pytest.raises(services.BomError, match=r"\(KIT → A\)"):
        services.set_bom(bundle=a, lines=[(kit, 1)])


@pytest.mark.parametrize("quantity", [0, -1, services.MAX_LINE_QUANTITY + 1])
def test_quantity_outside_bounds_is_refused(quantity):
    a = factories.make_sku()
    bundle = factories.make_sku()

    with pytest.raises(services.BomError, match="quantity"):
        services.set_bom(bundle=bundle, lines=[(a, quantity)])


def test_component_listed_twice_is_refused():
    a = factories.make_sku()
    bundle = factories.make_sku()

    with pytest.raises(services.BomError, match="listed twice"):
        services.set_bom(bundle=bundle, lines=[(a, 1), (a, 2)])


def test_sku_holding_stock_cannot_become_a_bundle():
    a, stocked = factories.make_sku(), factories.make_sku()
    factories.stock(stocked, factories.make_location(), 3)

    with pytest.raises(services.BomError, match="holds stock of its own"):
        services.set_bom(bundle=stocked, lines=[(a, 1)])


def test_create_bundle_saves_nothing_when_lines_are_refused():
    a = factories.make_sku()

    with pytest.raises(services.BomError):
        services.create_bundle(code="NEW-KIT", name="Kit", lines=[(a, 1), (a, 1)])

    assert not BomLine.objects.exists()
    assert not type(a).objects.filter(code="NEW-KIT").exists()


# -----------------------------------------------------------------------------------------
# Selling, cancelling and returning
# -----------------------------------------------------------------------------------------


@pytest.fixture
def gift_set_at(db):
    a, b = factories.make_sku(code="A"), factories.make_sku(code="B")
    location = factories.make_location()
    factories.stock(a, location, 10)
    factories.stock(b, location, 10)
    inner = make_bundle((a, 1))
    return make_bundle((inner, 2), (b, 1)), a, b, location


def test_selling_a_bundle_commits_each_leaf_component(gift_set_at):
    gift_set, a, b, location = gift_set_at

    events = services.commit_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=3, context=factories.context()
    )

    assert [(event.sku_id, event.delta_committed) for event in events] == [
        (a.pk, 6),
        (b.pk, 3),
    ]
    assert figures(a, location) == (10, 6, 0)
    assert figures(b, location) == (10, 3, 0)
    assert figures(gift_set, location) == (0, 0, 0)


def test_bundle_sale_that_one_component_cannot_cover_changes_nothing(gift_set_at):
    gift_set, a, b, location = gift_set_at

    with pytest.raises(inventory_services.InsufficientStock):
        services.commit_sku(
            sku_id=gift_set.pk, location_id=location.pk, quantity=6, context=factories.context()
        )

    assert figures(a, location) == (10, 0, 0)
    assert figures(b, location) == (10, 0, 0)


def test_marketplace_bundle_order_beyond_stock_is_recorded_with_shortfall(gift_set_at):
    gift_set, a, _, location = gift_set_at

    events = services.commit_sku(
        sku_id=gift_set.pk,
        location_id=location.pk,
        quantity=6,
        context=factories.context(),
        allow_shortfall=True,
    )

    assert {event.sku_id: event.shortfall for event in events}[a.pk] == 2


def test_repeated_bundle_sale_with_one_key_commits_once(gift_set_at):
    gift_set, a, _, location = gift_set_at
    context = factories.context()

    first = services.commit_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=1, context=context
    )
    again = services.commit_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=1, context=context
    )

    assert [event.pk for event in again] == [event.pk for event in first]
    assert figures(a, location) == (10, 2, 0)


def test_cancelled_bundle_releases_exactly_its_components(gift_set_at):
    gift_set, a, b, location = gift_set_at
    services.commit_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=2, context=factories.context()
    )

    services.cancel_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=2, context=factories.context()
    )

    assert figures(a, location) == (10, 0, 0)
    assert figures(b, location) == (10, 0, 0)


def test_returned_bundle_restores_all_components(gift_set_at):
    """The article's edge case: a returned bundle puts every component back."""
    gift_set, a, b, location = gift_set_at
    before = selectors.bundle_available(bundle_id=gift_set.pk, location_ids=[location.pk])
    services.commit_sku(
        sku_id=gift_set.pk, location_id=location.pk, quantity=2, context=factories.context()
    )
    for sku in (a, b):
        level_committed = figures(sku, location)[1]
        inventory_services.ship_order(
            sku_id=sku.pk,
            location_id=location.pk,
            quantity=level_committed,
            context=factories.context(),
        )

    events = services.return_sku(
        sku_id=gift_set.pk,
        location_id=location.pk,
        quantity=2,
        restock=True,
        context=factories.context(),
    )

    assert {event.kind for event in events} == {EventKind.RETURN_RESTOCKED}
    assert figures(a, location) == (10, 0, 0)
    assert figures(b, location) == (10, 0, 0)
    assert selectors.bundle_available(bundle_id=gift_set.pk, location_ids=[location.pk]) == before


def test_damaged_bundle_return_is_logged_without_restocking(gift_set_at):
    gift_set, a, b, location = gift_set_at

    events = services.return_sku(
        sku_id=gift_set.pk,
        location_id=location.pk,
        quantity=1,
        restock=False,
        context=factories.context(),
    )

    assert {event.kind for event in events} == {EventKind.RETURN_DAMAGED}
    assert figures(a, location) == (10, 0, 0)
    assert figures(b, location) == (10, 0, 0)


def test_plain_sku_sale_goes_through_the_same_path(gift_set_at):
    _, a, _, location = gift_set_at

    [event] = services.commit_sku(
        sku_id=a.pk, location_id=location.pk, quantity=4, context=factories.context()
    )

    assert (event.sku_id, event.delta_committed) == (a.pk, 4)


def test_sale_quantity_must_be_positive(gift_set_at):
    gift_set, _, _, location = gift_set_at

    with pytest.raises(ApplicationError):
        services.commit_sku(
            sku_id=gift_set.pk, location_id=location.pk, quantity=0, context=factories.context()
        )


def test_order_lines_on_one_stock_row_are_merged():
    a = factories.make_sku()
    location = factories.make_location()
    factories.stock(a, location, 5)

    [event] = inventory_services.commit_order_lines(
        lines=[(a.pk, location.pk, 2), (a.pk, location.pk, 3)], context=factories.context()
    )

    assert event.delta_committed == 5
    assert figures(a, location) == (5, 5, 0)
    ledger = InventoryEvent.objects.filter(sku=a).aggregate(committed=Sum("delta_committed"))
    assert ledger == {"committed": 5}
