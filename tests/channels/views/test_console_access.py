"""Every console page asks for a signed-in user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_signed_out_visitor_is_sent_to_sign_in(client) -> None:
    """The scorecard redirects to the sign-in page and comes back after it."""
    response = client.get(reverse("dashboard:scorecard"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/"


def test_reading_the_scorecard_needs_the_view_permission(client) -> None:
    """An account with no role is refused; the view permission every role holds admits."""
    user = User.objects.create_user(username="nobody")
    client.force_login(user)
    assert client.get(reverse("dashboard:scorecard")).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_channel"))
    client.force_login(User.objects.get(pk=user.pk))
    response = client.get(reverse("dashboard:scorecard"))
    assert response.status_code == 200
    assert b"Sync health" in response.content
