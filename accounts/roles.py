"""The roles of ``nventory.permissions.ROLES`` as Django groups, kept as the code says."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions

from nventory import permissions


def sync_roles(apps: Apps, *, create_permissions_first: bool = True) -> None:
    """Create every role's group and give it its permissions plus every ``view_``
    permission of ``READABLE_APPS``; permissions already granted stay. Safe to run again.

    Run by a migration (the first creation) and after every ``migrate`` (so that a model
    added later is readable by every role too). Permissions are normally created after
    the migrations; a migration creates them here first so that a fresh database has them.
    """
    for app_config in apps.get_app_configs() if create_permissions_first else ():
        # create_permissions skips an app whose models_module is None, which the
        # migrations' app registry leaves unset.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # type: ignore[assignment]
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    readable = list(
        permission_model.objects.filter(
            content_type__app_label__in=permissions.READABLE_APPS, codename__startswith="view_"
        )
    )
    for role, names in permissions.ROLES.items():
        granted = [_permission(permission_model, name) for name in names]
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.add(*granted, *readable)


def _permission(permission_model: Any, name: str) -> Any:
    app_label, codename = name.split(".")
    return permission_model.objects.get(content_type__app_label=app_label, codename=codename)


def sync_roles_after_migrate(sender: Any, apps: Apps | None = None, **kwargs: Any) -> None:
    """post_migrate receiver: ``sync_roles`` once the last app's permissions exist (Django
    creates each app's on that app's signal), on the migrated state; ``flush`` sends no
    state: the installed apps then, and the roles come back after it."""
    with_models = [config for config in global_apps.get_app_configs() if config.models_module]
    if sender is not with_models[-1]:
        return
    sync_roles(apps or global_apps, create_permissions_first=False)
