from django.apps import AppConfig


class BundlesConfig(AppConfig):
    name = "bundles"
    verbose_name = "Bundles and kits"

    def ready(self) -> None:
        from bundles import selectors
        from inventory import services

        # A reservation of a bundle holds its leaf components (inventory.services).
        services.register_sku_expander(selectors.expand_bundle)
