"""API tokens: stored as digests, refused once expired or revoked, issued and revoked by
commands that print only what a script needs."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken
from nventory import permissions
from tests import factories

pytestmark = pytest.mark.django_db

User = get_user_model()
READ = "/api/v1/skus/"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def reader():
    return factories.make_user(username="reader", roles=[permissions.VIEWER])


def test_the_key_is_not_stored_in_clear_only_its_digest(reader):
    issued = services.issue_token(user=reader, expires_in=dt.timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT t::text FROM accounts_apitoken t")
        [(row,)] = cursor.fetchall()
    assert issued.key not in row
    assert issued.key[len(issued.token.prefix) :] not in row
    assert issued.token.digest == hashlib.sha256(issued.key.encode()).hexdigest()
    assert issued.token.prefix == issued.key[:12]
    assert _client(issued.key).get(READ).status_code == 200


def test_an_expired_token_is_refused(reader):
    issued = services.issue_token(user=reader, expires_in=dt.timedelta(hours=1))
    assert _client(issued.key).get(READ).status_code == 200
    ApiToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    answer = _client(issued.key).get(READ)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "This token has expired."


def test_a_revoked_token_is_refused_at_once_and_revoking_again_changes_nothing(reader):
    issued = services.issue_token(user=reader, expires_in=None)
    client = _client(issued.key)
    assert client.get(READ).status_code == 200
    revoked = services.revoke_token(token_id=issued.token.pk)
    assert client.get(READ).status_code == 401
    assert services.revoke_token(token_id=issued.token.pk).revoked_at == revoked.revoked_at


def test_a_token_of_a_deactivated_user_is_refused(reader):
    issued = services.issue_token(user=reader, expires_in=None)
    reader.is_active = False
    reader.save()
    assert _client(issued.key).get(READ).status_code == 401


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token nvt_unknown", "Basic abc"])
def test_malformed_or_unknown_credentials_are_refused(reader, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(READ).status_code == 401


def test_a_bearer_header_is_accepted_like_token(reader):
    issued = services.issue_token(user=reader, expires_in=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    assert client.get(READ).status_code == 200


def test_use_is_recorded_on_the_token(reader):
    issued = services.issue_token(user=reader, expires_in=None)
    assert issued.token.last_used_at is None
    _client(issued.key).get(READ)
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


def test_issuing_for_someone_else_needs_the_permission_and_a_superuser_for_a_superuser(
    reader, admin_user
):
    clerk = factories.make_user(roles=[permissions.STOCK_CLERK])
    with pytest.raises(PermissionDenied):
        services.issue_token(user=reader, expires_in=None, actor=clerk)
    manager = factories.make_user(permissions=[permissions.MANAGE_API_TOKENS])
    issued = services.issue_token(user=reader, expires_in=None, actor=manager)
    assert issued.token.created_by == manager.username
    with pytest.raises(PermissionDenied):
        services.issue_token(user=admin_user, expires_in=None, actor=manager)
    with pytest.raises(PermissionDenied):
        services.revoke_token(token_id=issued.token.pk, actor=clerk)
    assert services.revoke_token(token_id=issued.token.pk, actor=manager).revoked_by == (
        manager.username
    )


# -----------------------------------------------------------------------------------------
# The commands
# -----------------------------------------------------------------------------------------


def _command(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_issue_api_token_prints_only_a_working_key_and_creates_the_user_in_its_role():
    out, err = _command("issue_api_token", "erp", "--create", "--role", permissions.ORDER_CLIENT)
    key = out.strip()
    assert out == key + "\n" and key.startswith("nvt_")
    assert "Created user 'erp'" in err
    user = User.objects.get(username="erp")
    assert not user.has_usable_password()
    assert user.has_perm(permissions.SELL)
    token = ApiToken.objects.get(user=user)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    # The default lifetime: API_TOKEN_LIFETIME_DAYS (90).
    assert token.expires_at is not None
    lifetime = token.expires_at - token.created_at
    assert dt.timedelta(days=89) < lifetime <= dt.timedelta(days=90)
    assert _client(key).get(READ).status_code == 200


def test_issue_api_token_gives_a_new_key_each_time_and_rotate_revokes_the_others():
    first = _command("issue_api_token", "erp", "--create")[0].strip()
    second = _command("issue_api_token", "erp")[0].strip()
    assert first != second
    rotated = _command("issue_api_token", "erp", "--rotate", "--no-expiry")[0].strip()
    assert _client(first).get("/api/v1/").status_code == 401
    assert _client(second).get("/api/v1/").status_code == 401
    assert _client(rotated).get("/api/v1/").status_code == 200
    assert ApiToken.objects.get(revoked_at__isnull=True).expires_at is None


def test_issue_api_token_refuses_an_unknown_user_without_create():
    with pytest.raises(CommandError, match="--create"):
        _command("issue_api_token", "nobody")
    assert not User.objects.filter(username="nobody").exists()
    assert not ApiToken.objects.exists()


def test_revoke_api_token_revokes_one_token_by_its_prefix_or_all_of_a_user():
    first = _command("issue_api_token", "erp", "--create")[0].strip()
    second = _command("issue_api_token", "erp")[0].strip()
    out, _ = _command("revoke_api_token", "erp", "--prefix", first[:12])
    assert out.strip() == "Revoked 1 token(s) of 'erp'."
    assert _client(first).get("/api/v1/").status_code == 401
    assert _client(second).get("/api/v1/").status_code == 200
    _command("revoke_api_token", "erp")
    assert _client(second).get("/api/v1/").status_code == 401
