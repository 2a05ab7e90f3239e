"""Password logins are throttled: after the failure limit, even the right password is
refused for the cool-off time."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("login_route", ["admin:login", "login"])
def test_a_login_is_locked_after_the_failure_limit_even_for_the_right_password(
    client, login_route
):
    """The admin's sign-in and the console's alike."""
    factories.make_user(username="clerk", password="right-horse-battery", is_staff=True)
    login = reverse(login_route)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        answer = client.post(login, {"username": "clerk", "password": "wrong"})
        assert answer.status_code in {200, 429}
        assert "_auth_user_id" not in client.session
    locked = client.post(login, {"username": "clerk", "password": "right-horse-battery"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_clears_the_count(client):
    factories.make_user(username="clerk", password="right-horse-battery", is_staff=True)
    login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(login, {"username": "clerk", "password": "wrong"})
    client.post(login, {"username": "clerk", "password": "right-horse-battery"})
    assert "_auth_user_id" in client.session
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(login, {"username": "clerk", "password": "wrong"})
    client.post(login, {"username": "clerk", "password": "right-horse-battery"})
    assert "_auth_user_id" in client.session


def test_another_user_name_is_not_locked_by_someone_elses_failures(client):
    factories.make_user(username="clerk", password="right-horse-battery", is_staff=True)
    factories.make_user(username="other", password="other-horse-battery", is_staff=True)
    login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post(login, {"username": "clerk", "password": "wrong"})
    client.post(login, {"username": "other", "password": "other-horse-battery"})
    assert "_auth_user_id" in client.session
