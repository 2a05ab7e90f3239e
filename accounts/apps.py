from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  (registers the OpenAPI extension)
        from accounts.roles import sync_roles_after_migrate

        # Roles stay complete when a later migration adds a model (its view_ permission).
        post_migrate.connect(sync_roles_after_migrate, sender=self)
