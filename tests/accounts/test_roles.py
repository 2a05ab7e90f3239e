"""The roles exist as groups holding their permissions and every view_ permission of the
readable apps, and stay complete."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from nventory import permissions
from tests import factories

pytestmark = pytest.mark.django_db


def _names(group: Group) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_every_role_is_a_group_with_its_permissions_and_every_readable_view():
    readable = {
        f"{app_label}.{codename}"
        for app_label, codename in Permission.objects.filter(
            content_type__app_label__in=permissions.READABLE_APPS, codename__startswith="view_"
        ).values_list("content_type__app_label", "codename")
    }
    assert "channels.view_deadletter" in readable
    for role, granted in permissions.ROLES.items():
        held = _names(Group.objects.get(name=role))
        assert held == set(granted) | readable, role


def test_a_viewer_changes_nothing_and_a_stock_clerk_does_not_manage_channels():
    viewer = factories.make_user(roles=[permissions.VIEWER])
    clerk = factories.make_user(roles=[permissions.STOCK_CLERK])
    assert viewer.has_perm("inventory.view_sku")
    assert not any(viewer.has_perm(name) for role in permissions.ROLES.values() for name in role)
    assert clerk.has_perm(permissions.RECEIVE_ADJUST_TRANSFER)
    assert not clerk.has_perm(permissions.MANAGE_CHANNELS)
    assert not clerk.has_perm(permissions.MANAGE_API_TOKENS)


def test_a_role_that_lost_a_permission_gets_it_back_at_the_next_migrate():
    clerk = Group.objects.get(name=permissions.STOCK_CLERK)
    clerk.permissions.remove(Permission.objects.get(codename="change_stocklevel"))
    call_command("migrate", verbosity=0)
    assert permissions.RECEIVE_ADJUST_TRANSFER in _names(clerk)
