from __future__ import annotations

from dataclasses import dataclass
from unittest import mock

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from inventory import services
from inventory.models import (
    EventSource,
    InventoryEvent,
    Location,
    Reservation,
    Sku,
    StockLevel,
)
from tests import factories


@dataclass
class Stocked:
    sku: Sku
    location: Location
    reservation: Reservation

    @property
    def level(self) -> StockLevel:
        return StockLevel.objects.get(sku=self.sku, location=self.location)


@pytest.fixture
def stocked(db) -> Stocked:
    sku = factories.make_sku(name="Admin test mug", category="Drinkware")
    location = factories.make_location(kind=Location.Kind.MARKETPLACE_FULFILLED)
    factories.stock(sku, location, 10)
    reservation = services.reserve_stock(
        sku_id=sku.pk, location_id=location.pk, quantity=3, context=factories.context()
    )
    return Stocked(sku=sku, location=location, reservation=reservation)


def _url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:inventory_{model}_{view}", args=args)


@pytest.mark.parametrize(
    "model", ["sku", "location", "stocklevel", "inventoryevent", "reservation"]
)
def test_every_changelist_renders_with_its_rows(admin_client: Client, stocked, model):
    """Each changelist answers 200 and lists the SKU's rows."""
    response = admin_client.get(_url(model, "changelist"))

    assert response.status_code == 200
    expected = stocked.location.code if model == "location" else stocked.sku.code
    assert expected in response.content.decode()
    assert response.context["cl"].result_count >= 1


def test_changelists_search_and_filter(admin_client: Client, stocked):
    """Search and filters narrow the lists rather than erroring."""
    other = factories.make_sku(code="OTHER-1")
    factories.stock(other, stocked.location, 1)

    response = admin_client.get(_url("sku", "changelist"), {"q": stocked.sku.code})
    assert [sku.code for sku in response.context["cl"].result_list] == [stocked.sku.code]

    response = admin_client.get(_url("inventoryevent", "changelist"), {"q": other.code})
    assert {e.sku_id for e in response.context["cl"].result_list} == {other.pk}

    response = admin_client.get(_url("reservation", "changelist"), {"status__exact": "active"})
    assert [r.pk for r in response.context["cl"].result_list] == [stocked.reservation.pk]

    oversold = services.commit_order(
        sku_id=other.pk,
        location_id=stocked.location.pk,
        quantity=4,
        context=factories.context(),
        allow_shortfall=True,
    )
    response = admin_client.get(_url("inventoryevent", "changelist"), {"oversold": "yes"})
    assert [e.pk for e in response.context["cl"].result_list] == [oversold.pk]


def test_sku_changelist_shows_stock_totals(admin_client: Client, stocked):
    """The SKU list sums on hand and available over locations (10 on hand, 3 reserved)."""
    response = admin_client.get(_url("sku", "changelist"))

    [row] = [sku for sku in response.context["cl"].result_list if sku.pk == stocked.sku.pk]
    assert (row.on_hand_units, row.available_units) == (10, 7)


def test_changelists_do_not_query_per_row(
    admin_client: Client, stocked, django_assert_max_num_queries
):
    """list_select_related keeps the query count flat as rows are added."""
    for _ in range(5):
        sku = factories.make_sku()
        factories.stock(sku, stocked.location, 2)
        services.reserve_stock(
            sku_id=sku.pk, location_id=stocked.location.pk, quantity=1, context=factories.context()
        )
    for model in ("sku", "stocklevel", "inventoryevent", "reservation"):
        # Session, user, counts, rows, filter choices: 5 or 6 whatever the number of rows.
        with django_assert_max_num_queries(8):
            response = admin_client.get(_url(model, "changelist"))
        assert response.context["cl"].result_count >= 6


@pytest.mark.parametrize("model", ["sku", "location"])
def test_editable_change_pages_render(admin_client: Client, stocked, model):
    """SKU and location change pages render with the object and a save button."""
    obj = stocked.sku if model == "sku" else stocked.location
    response = admin_client.get(_url(model, "change", obj.pk))

    assert response.status_code == 200
    assert obj.code in response.content.decode()
    assert 'name="_save"' in response.content.decode()


def test_sku_change_page_shows_levels_and_stock_link(admin_client: Client, stocked):
    """The SKU page lists its stock per location and links to the stock form."""
    response = admin_client.get(_url("sku", "change", stocked.sku.pk))
    content = response.content.decode()

    assert stocked.location.code in content
    assert reverse("admin:inventory_sku_stock", args=[stocked.sku.pk]) in content


def test_saving_a_sku_leaves_its_read_only_stock_alone(admin_client: Client, stocked):
    """Editing a SKU saves its fields; the stock inline is view-only."""
    level = stocked.level
    response = admin_client.post(
        _url("sku", "change", stocked.sku.pk),
        {
            "code": stocked.sku.code,
            "name": "Renamed mug",
            "category": "Drinkware",
            "is_active": "on",
            "stock_levels-TOTAL_FORMS": "1",
            "stock_levels-INITIAL_FORMS": "1",
            "stock_levels-MIN_NUM_FORMS": "0",
            "stock_levels-MAX_NUM_FORMS": "1000",
            "stock_levels-0-id": str(level.pk),
            "stock_levels-0-sku": str(stocked.sku.pk),
            "stock_levels-0-on_hand": "999",
            "marketplace_stock-TOTAL_FORMS": "0",
            "marketplace_stock-INITIAL_FORMS": "0",
            "marketplace_stock-MIN_NUM_FORMS": "0",
            "marketplace_stock-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302
    stocked.sku.refresh_from_db()
    assert stocked.sku.name == "Renamed mug"
    assert stocked.level.on_hand == 10


@pytest.mark.parametrize("model", ["stocklevel", "inventoryevent", "reservation"])
def test_service_owned_models_are_view_only(admin_client: Client, stocked, model):
    """Stock, ledger and reservations: no add, no delete, a change page without a form."""
    model_class = {
        "stocklevel": StockLevel,
        "inventoryevent": InventoryEvent,
        "reservation": Reservation,
    }[model]
    model_admin = admin.site._registry[model_class]
    obj = {
        "stocklevel": stocked.level,
        "inventoryevent": InventoryEvent.objects.filter(sku=stocked.sku).first(),
        "reservation": stocked.reservation,
    }[model]
    assert obj is not None

    assert admin_client.get(_url(model, "add")).status_code == 403
    assert admin_client.get(_url(model, "delete", obj.pk)).status_code == 403
    response = admin_client.get(_url(model, "change", obj.pk))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    for field in obj._meta.fields:
        assert f'name="{field.name}"' not in content
    assert set(response.context["adminform"].readonly_fields) >= {
        field.name for field in obj._meta.fields if field.name != "id"
    }
    request = response.wsgi_request
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, obj) is False
    assert model_admin.has_delete_permission(request, obj) is False
    assert "delete_selected" not in model_admin.get_actions(request)


def test_ledger_change_form_post_is_refused_and_changes_nothing(admin_client: Client, stocked):
    """Posting to a ledger event's change page is forbidden; the event is untouched."""
    event = InventoryEvent.objects.filter(sku=stocked.sku).order_by("pk").first()
    assert event is not None

    response = admin_client.post(
        _url("inventoryevent", "change", event.pk), {"delta_on_hand": "500", "reason": "x"}
    )

    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.delta_on_hand, event.reason) == (10, "")


def test_release_action_releases_through_the_service(admin_client: Client, stocked):
    """The release action calls services.release_reservation and frees the units."""
    assert stocked.level.reserved == 3

    with mock.patch(
        "inventory.services.release_reservation", wraps=services.release_reservation
    ) as release:
        response = admin_client.post(
            _url("reservation", "changelist"),
            {
                "action": "release_selected_reservations",
                "_selected_action": [stocked.reservation.pk],
            },
            follow=True,
        )

    assert response.status_code == 200
    release.assert_called_once()
    assert release.call_args.kwargs["reservation_id"] == stocked.reservation.pk
    assert release.call_args.kwargs["context"].source == EventSource.ADMIN
    stocked.reservation.refresh_from_db()
    assert stocked.reservation.status == Reservation.Status.RELEASED
    level = stocked.level
    assert (level.reserved, level.available) == (0, 10)
    event = InventoryEvent.objects.get(
        reservation=stocked.reservation, kind="reservation_released"
    )
    assert (event.source, event.actor) == (EventSource.ADMIN, "admin")
    assert "Released 1 reservation" in response.content.decode()


def test_release_action_skips_reservations_that_are_not_active(admin_client: Client, stocked):
    """A confirmed reservation is left as it is and reported; stock does not move."""
    services.confirm_reservation(
        reservation_id=stocked.reservation.pk, context=factories.context()
    )
    before = (stocked.level.committed, stocked.level.reserved)
    events_before = InventoryEvent.objects.count()

    response = admin_client.post(
        _url("reservation", "changelist"),
        {"action": "release_selected_reservations", "_selected_action": [stocked.reservation.pk]},
        follow=True,
    )

    stocked.reservation.refresh_from_db()
    assert stocked.reservation.status == Reservation.Status.CONFIRMED
    assert (stocked.level.committed, stocked.level.reserved) == before == (3, 0)
    assert InventoryEvent.objects.count() == events_before
    assert "Not active" in response.content.decode()


def test_release_action_needs_the_change_reservation_permission(stocked, client: Client):
    """A staff user with view permission only does not get the action."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_reservation"))
    client.force_login(user)

    response = client.get(_url("reservation", "changelist"))

    assert response.status_code == 200
    assert "release_selected_reservations" not in response.content.decode()
    client.post(
        _url("reservation", "changelist"),
        {"action": "release_selected_reservations", "_selected_action": [stocked.reservation.pk]},
    )
    stocked.reservation.refresh_from_db()
    assert stocked.reservation.status == Reservation.Status.ACTIVE


def test_stock_form_receives_through_the_service_once_per_submission(
    admin_client: Client, stocked
):
    """Receiving from the admin records one admin event; a double submit records once."""
    url = reverse("admin:inventory_sku_stock", args=[stocked.sku.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    key = page.context["form"]["idempotency_key"].value()
    data = {
        "location": stocked.location.pk,
        "operation": "receive",
        "quantity": 5,
        "external_reference": "PO-77",
        "idempotency_key": key,
    }

    first = admin_client.post(url, data)
    second = admin_client.post(url, data)

    assert first.status_code == second.status_code == 302
    assert stocked.level.on_hand == 15
    event = InventoryEvent.objects.get(idempotency_key=key)
    assert (event.kind, event.source, event.actor, event.external_reference) == (
        "receipt",
        EventSource.ADMIN,
        "admin",
        "PO-77",
    )


def test_stock_form_adjustment_needs_a_reason_and_respects_available(
    admin_client: Client, stocked
):
    """An adjustment without a reason, or below available, is refused and changes nothing."""
    url = reverse("admin:inventory_sku_stock", args=[stocked.sku.pk])
    events_before = InventoryEvent.objects.count()
    base = {"location": stocked.location.pk, "operation": "adjust"}

    no_reason = admin_client.post(
        url, {**base, "quantity": -2, "idempotency_key": _fresh_key(admin_client, url)}
    )
    too_many = admin_client.post(
        url,
        {
            **base,
            "quantity": -8,
            "reason": "Count",
            "idempotency_key": _fresh_key(admin_client, url),
        },
    )

    assert no_reason.status_code == too_many.status_code == 200
    assert "reason" in no_reason.context["form"].errors
    assert "available" in " ".join(too_many.context["form"].non_field_errors())
    assert InventoryEvent.objects.count() == events_before
    assert stocked.level.on_hand == 10

    admin_client.post(
        url,
        {
            **base,
            "quantity": -2,
            "reason": "Two broken in a count",
            "idempotency_key": _fresh_key(admin_client, url),
        },
    )
    assert stocked.level.on_hand == 8
    assert InventoryEvent.objects.filter(sku=stocked.sku, kind="adjustment").count() == 1


def _fresh_key(client: Client, url: str) -> str:
    return client.get(url).context["form"]["idempotency_key"].value()
