from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import schema  # noqa: F401  (registers the OpenAPI extension)
        from accounts.admin_actions import guard_unguarded_actions
        from accounts.roles import sync_roles_after_migrate

        # The admin app comes first in INSTALLED_APPS, so every ModelAdmin is registered.
        guard_unguarded_actions(admin.site)

        # Roles stay complete when a later migration adds a model (its view_ permission).
        post_migrate.connect(sync_roles_after_migrate)
