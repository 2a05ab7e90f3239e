"""Who may do what, generated from what the project exposes: every API route (from the URL
resolver) and every admin action (from the admin's registry) is refused without its
permission and allowed with it; one client never reaches another's reservations or
idempotency keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from channels.models import DeadLetter
from inventory.models import Reservation
from nventory import permissions
from nventory.api import ANY_CLIENT, ApiView
from nventory.api_permissions import required_permission
from tests import factories

pytestmark = pytest.mark.django_db

# Every operation permission the project names (nventory/permissions.py).
OPERATION_PERMISSIONS = {
    value
    for name, value in vars(permissions).items()
    if name.isupper() and isinstance(value, str) and "." in value
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    view: type
    permission: str | None

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _concrete(route: str) -> str:
    """A path for the route: ids that exist nowhere, codes no object has."""
    route = re.sub(r"<int:[^>]+>", "987654", route)
    return "/" + re.sub(r"<[^>]+>", "no-such-code", route)


def api_operations() -> list[Operation]:
    operations = []
    for route, pattern in _routes(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        if not route.startswith("api/v1/") or view is None:
            continue
        for method in HTTP_METHODS:
            if hasattr(view, method):
                operations.append(
                    Operation(_concrete(route), method, view, required_permission(view, method))
                )
    return operations


API_OPERATIONS = api_operations()


def _user_with_every_permission_but(excluded: str | None) -> Any:
    user = factories.make_user()
    granted = Permission.objects.select_related("content_type")
    user.user_permissions.add(
        *[
            permission
            for permission in granted
            if f"{permission.content_type.app_label}.{permission.codename}" != excluded
        ]
    )
    return user


def test_the_resolver_finds_the_api():
    """A guard on the generation itself: the routes of the three apps are all there."""
    paths = {operation.path for operation in API_OPERATIONS}
    assert {"/api/v1/skus/", "/api/v1/dead-letters/987654/replay/", "/api/v1/bundles/"} <= paths
    assert len(API_OPERATIONS) >= 25


@pytest.mark.parametrize("operation", API_OPERATIONS, ids=str)
def test_every_api_operation_names_a_permission_of_its_kind(operation):
    """Writes name an operation permission of nventory/permissions.py, reads a view_
    permission; only the API's entry point is open to any client."""
    needed = operation.permission
    assert needed is not None, f"{operation} names no permission: it is refused to all"
    if needed == ANY_CLIENT:
        assert operation.path == "/api/v1/" and operation.method == "get"
    elif operation.method == "get":
        assert needed.split(".")[1].startswith("view_"), needed
    else:
        assert needed in OPERATION_PERMISSIONS, needed


@pytest.mark.parametrize("operation", API_OPERATIONS, ids=str)
def test_every_api_operation_is_refused_without_its_permission_and_allowed_with_it(
    operation,
):
    def call(client: APIClient) -> int:
        return getattr(client, operation.method)(operation.path, {}, format="json").status_code

    assert call(APIClient()) == 401  # no token at all
    if operation.permission != ANY_CLIENT:
        assert call(factories.api_client(factories.make_user())) == 403
        # Every other permission of the project does not stand in for the one it needs.
        assert (
            call(factories.api_client(_user_with_every_permission_but(operation.permission)))
            == 403
        )
        allowed = factories.make_user(permissions=[operation.permission])
    else:
        allowed = factories.make_user()
    # Allowed: whatever comes next (400 for the empty body, 404 for the unknown id) is
    # the view's own answer, not a refusal.
    assert call(factories.api_client(allowed)) not in {401, 403}


def test_a_view_that_names_no_permission_is_refused_even_to_a_superuser(admin_user):
    class ForgottenApi(ApiView):
        def get(self, request: Request) -> Any:
            raise AssertionError("reached a view that names no permission")

    request = APIRequestFactory().get("/api/v1/forgotten/")
    from rest_framework.test import force_authenticate

    force_authenticate(request, user=admin_user)
    assert ForgottenApi.as_view()(request).status_code == 403


# -----------------------------------------------------------------------------------------
# Admin actions
# -----------------------------------------------------------------------------------------


def admin_actions() -> list[tuple[type, str]]:
    return [
        (model, name)
        for model, model_admin in admin.site._registry.items()
        for _func, name, _description in model_admin._get_base_actions()  # type: ignore[attr-defined]
        # Django's own bulk delete needs the delete permission, checked by Django.
        if name != "delete_selected"
    ]


ADMIN_ACTIONS = admin_actions()


def _actions_for(user: Any, model: type) -> set[str]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return set(admin.site._registry[model].get_actions(request))


def _staff_reader() -> Any:
    """Staff who may read every model of the project and of the libraries."""
    user = factories.make_user(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def _forget_permissions(user: Any) -> None:
    """Drop the permissions Django cached on the user object, after changing them."""
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)


def test_the_registry_lists_the_projects_actions():
    names = {name for _model, name in ADMIN_ACTIONS}
    assert {"replay", "try_again_now", "read_recent_orders", "release_selected_reservations"} <= (
        names
    )


@pytest.mark.parametrize(
    ("model", "action"), ADMIN_ACTIONS, ids=lambda value: getattr(value, "__name__", value)
)
def test_every_admin_action_is_refused_to_a_reader_and_allowed_with_a_permission(model, action):
    """Reading a list is not enough to act on it; some one permission besides reading
    unlocks the action (found by trying the model's own and the project's operations)."""
    reader = _staff_reader()
    assert action not in _actions_for(reader, model)
    reading = list(reader.user_permissions.all())
    unlocking = []
    candidates = Permission.objects.exclude(codename__startswith="view_").select_related(
        "content_type"
    )
    for permission in candidates:
        name = f"{permission.content_type.app_label}.{permission.codename}"
        if permission.content_type.model_class() is not model and name not in (
            OPERATION_PERMISSIONS
        ):
            continue
        reader.user_permissions.set([*reading, permission])
        _forget_permissions(reader)
        if action in _actions_for(reader, model):
            unlocking.append(name)
    assert unlocking, f"{model.__name__}.{action} is unavailable to every non-superuser"


@pytest.mark.parametrize(
    ("action", "operation"),
    [
        ("replay", permissions.HANDLE_DEAD_LETTERS),
        ("try_again_now", permissions.MANAGE_CHANNELS),
        ("read_recent_orders", permissions.MANAGE_CHANNELS),
        ("release_selected_reservations", permissions.RELEASE_ANY_RESERVATION),
        ("revoke", permissions.MANAGE_API_TOKENS),
    ],
)
def test_the_projects_admin_actions_need_their_operation_permission(action, operation):
    [model] = [model for model, name in ADMIN_ACTIONS if name == action]
    user = _staff_reader()
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label=operation.split(".")[0], codename=operation.split(".")[1]
        )
    )
    assert action in _actions_for(user, model)


def _dead_letter() -> DeadLetter:
    channel = factories.make_channel()
    listing = factories.make_listing(channel=channel, sku=factories.make_sku())
    return DeadLetter.objects.create(
        channel=channel, listing=listing, target_quantity=3, attempts=[], status="open"
    )


def test_posting_the_replay_action_as_a_viewer_replays_nothing(client):
    """The action is not just hidden: a forged POST of it runs nothing."""
    dead_letter = _dead_letter()
    viewer = factories.make_user(is_staff=True, roles=[permissions.VIEWER])
    client.force_login(viewer)
    changelist = reverse("admin:channels_deadletter_changelist")
    client.post(changelist, {"action": "replay", "_selected_action": [dead_letter.pk]})
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetter.Status.OPEN

    manager = factories.make_user(is_staff=True, roles=[permissions.CHANNEL_MANAGER])
    client.force_login(manager)
    client.post(changelist, {"action": "replay", "_selected_action": [dead_letter.pk]})
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetter.Status.REPLAYED


def test_the_csv_import_of_listings_needs_the_listings_change_permission(client):
    page = reverse("admin:channels_listing_import")
    client.force_login(factories.make_user(is_staff=True, roles=[permissions.VIEWER]))
    assert client.get(page).status_code == 403
    client.force_login(factories.make_user(is_staff=True, roles=[permissions.CHANNEL_MANAGER]))
    assert client.get(page).status_code == 200


# -----------------------------------------------------------------------------------------
# One client's reservations and keys are its own
# -----------------------------------------------------------------------------------------


@pytest.fixture
def two_clients(sku, location):
    factories.stock(sku, location, 10)
    first = factories.make_user(username="shop-a", roles=[permissions.ORDER_CLIENT])
    second = factories.make_user(username="shop-b", roles=[permissions.ORDER_CLIENT])
    return factories.api_client(first), factories.api_client(second)


def _reserve(client: APIClient, sku: Any, location: Any, key: str) -> Any:
    return client.post(
        "/api/v1/reservations/",
        {"sku": sku.code, "location": location.code, "quantity": 2, "idempotency_key": key},
        format="json",
    )


def test_another_client_gets_404_on_a_reservation_and_cannot_end_it(two_clients, sku, location):
    first, second = two_clients
    made = _reserve(first, sku, location, "cart-1")
    assert made.status_code == 201
    path = f"/api/v1/reservations/{made.json()['id']}/"

    for answer in (
        second.get(path),
        second.post(path + "confirm/", {}, format="json"),
        second.post(path + "release/", {}, format="json"),
    ):
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"
    assert Reservation.objects.get().status == Reservation.Status.ACTIVE
    # The owner still has it, untouched.
    assert first.get(path).json()["status"] == "active"
    assert first.post(path + "confirm/", {}, format="json").status_code == 200


def test_a_key_reused_by_another_client_does_not_return_the_first_clients_reservation(
    two_clients, sku, location
):
    first, second = two_clients
    mine = _reserve(first, sku, location, "shared-key").json()
    theirs = _reserve(second, sku, location, "shared-key")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert Reservation.objects.count() == 2
    # Each client's repeat still finds its own.
    assert _reserve(first, sku, location, "shared-key").json()["id"] == mine["id"]
    assert _reserve(second, sku, location, "shared-key").json()["id"] == theirs.json()["id"]


def test_a_key_reused_by_another_client_for_an_order_records_that_clients_own_order(
    two_clients, sku, location
):
    first, second = two_clients
    body = {"sku": sku.code, "location": location.code, "quantity": 1, "idempotency_key": "o-1"}
    mine = first.post("/api/v1/orders/commit/", body, format="json").json()
    theirs = second.post("/api/v1/orders/commit/", body, format="json")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert theirs.json()["committed_after"] == 2


def test_an_operator_who_may_release_any_reservation_sees_and_releases_a_clients(
    two_clients, sku, location
):
    first, _ = two_clients
    made = _reserve(first, sku, location, "cart-9").json()
    operator = factories.make_user(roles=[permissions.ORDER_CLIENT, permissions.CHANNEL_MANAGER])
    api = factories.api_client(operator)
    path = f"/api/v1/reservations/{made['id']}/"
    assert api.get(path).status_code == 200
    assert api.post(path + "release/", {}, format="json").json()["status"] == "released"


def test_the_schema_names_the_permission_of_every_operation(admin_user):
    """Clients read in the API docs what each operation needs; the scheme is the token."""
    client = APIClient()
    client.force_authenticate(admin_user)
    schema = client.get("/api/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            needed = required_permission(
                next(op.view for op in API_OPERATIONS if _matches(op, path, method)), method
            )
            assert f"Needs the permission `{needed}`." in operation["description"], (
                method,
                path,
            )


def _matches(operation: Operation, schema_path: str, method: str) -> bool:
    concrete = re.sub(r"\{[^}]+\}", "X", schema_path)
    return operation.method == method and re.sub(r"987654|no-such-code", "X", operation.path) == (
        concrete
    )
