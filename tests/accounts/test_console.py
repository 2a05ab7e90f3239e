"""The console's API tokens page: who may see it, issue and revoke, and that a key is shown
once and works."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken
from nventory import permissions
from tests import factories

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/tokens/"


@pytest.fixture
def administrator():
    return factories.make_user(
        username="admin-of-tokens",
        permissions=[permissions.MANAGE_API_TOKENS, "accounts.view_apitoken"],
    )


@pytest.fixture
def shop():
    return factories.make_user(username="shop", roles=[permissions.ORDER_CLIENT])


def test_signed_out_goes_to_sign_in_and_a_role_without_the_permission_is_refused(client):
    assert client.get(PAGE).status_code == 302
    client.force_login(factories.make_user(roles=[permissions.CHANNEL_MANAGER]))
    assert client.get(PAGE).status_code == 403


def test_issuing_shows_the_key_once_and_the_key_works(client, administrator, shop):
    client.force_login(administrator)
    answer = client.post(PAGE, {"user": shop.pk, "name": "storefront", "expires_in_days": 30})
    assert answer.status_code == 200
    assert answer["Cache-Control"] == "no-store"
    key = answer.context["issued_key"]
    assert key.startswith("nvt_") and key in answer.content.decode()
    token = ApiToken.objects.get(user=shop)
    assert token.name == "storefront" and token.created_by == "admin-of-tokens"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/skus/").status_code == 200
    # Never again: the list shows the start of the key only.
    listed = client.get(PAGE).content.decode()
    assert key not in listed and token.prefix in listed


def test_a_reader_sees_the_list_but_no_form_and_cannot_issue(client, shop):
    reader = factories.make_user(permissions=["accounts.view_apitoken"])
    client.force_login(reader)
    page = client.get(PAGE)
    assert page.status_code == 200 and b"Issue a token" not in page.content
    assert client.post(PAGE, {"user": shop.pk, "expires_in_days": 30}).status_code == 403
    assert not ApiToken.objects.exists()


def test_revoking_answers_the_row_to_htmx_and_the_key_stops_working(client, administrator, shop):
    from accounts import services

    issued = services.issue_token(user=shop, expires_in=None)
    client.force_login(administrator)
    row = client.post(reverse("tokens:revoke", args=[issued.token.pk]), HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    assert b"revoked" in row.content and b"<tr" in row.content and b"<html" not in row.content
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    assert api.get("/api/v1/skus/").status_code == 401


def test_a_reader_cannot_revoke(client, shop):
    from accounts import services

    issued = services.issue_token(user=shop, expires_in=None)
    client.force_login(factories.make_user(permissions=["accounts.view_apitoken"]))
    assert client.post(reverse("tokens:revoke", args=[issued.token.pk])).status_code == 403
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None
