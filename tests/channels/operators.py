"""Operators for console and service tests: users holding exactly the permissions named."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Permission, User

_numbers = itertools.count(1)


def make_operator(*permission_names: str, **fields) -> User:
    """A user with these permissions (``nventory.permissions`` names) and every view_
    permission of the apps, as every role has."""
    number = next(_numbers)
    fields.setdefault("username", f"operator-{number}")
    user = User.objects.create_user(password="a-long-test-password", **fields)
    codenames = [name.split(".", 1)[1] for name in permission_names]
    wanted = Permission.objects.filter(codename__in=codenames) | Permission.objects.filter(
        codename__startswith="view_",
        content_type__app_label__in=("inventory", "bundles", "channels", "reconciliation"),
    )
    user.user_permissions.set(wanted)
    return User.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache
