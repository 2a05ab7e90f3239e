from django.apps import AppConfig
from django.core import checks


class ChannelsConfig(AppConfig):
    # Not the `channels` pip package (Django Channels): that one is never installed.
    name = "channels"
    verbose_name = "Sales channels"

    def ready(self) -> None:
        from bundles import services as bundle_services
        from channels import checks as channel_checks
        from channels import services
        from channels.pipeline import outbox
        from inventory import services as inventory_services

        checks.register(channel_checks.every_offered_platform_has_a_connector)
        checks.register(channel_checks.no_fault_injection, checks.Tags.security, deploy=True)
        # The two apps below this one may not import it, so each offers one hook for the
        # edits that owe pushes and that channels.services does not make itself.
        inventory_services.register_stock_listener(outbox.on_stock_changed)
        bundle_services.register_bom_listener(services.owe_bundle_listings)
