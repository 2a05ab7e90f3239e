from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # Not the `channels` pip package (Django Channels): that one is never installed.
    name = "channels"
    verbose_name = "Sales channels"

    def ready(self) -> None:
        from channels import outbox
        from inventory.services import stock_changed

        stock_changed.connect(outbox.on_stock_changed, dispatch_uid="channels.outbox")
