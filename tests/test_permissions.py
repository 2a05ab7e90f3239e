"""The permission table names permissions that exist."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from nventory import permissions

pytestmark = pytest.mark.django_db


def test_every_role_permission_is_a_real_permission() -> None:
    """A misspelt codename would make an operation that nobody can ever be granted."""
    named = {name for role in permissions.ROLES.values() for name in role}
    for name in named:
        app_label, codename = name.split(".")
        assert Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).exists(), name
