from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import m2m_changed, post_delete, post_save


class ChannelsConfig(AppConfig):
    # Not the `channels` pip package (Django Channels): that one is never installed.
    name = "channels"
    verbose_name = "Sales channels"

    def ready(self) -> None:
        from channels import checks as channel_checks

        checks.register(channel_checks.every_offered_platform_has_a_connector)
        from bundles.services import bom_changed
        from channels import receivers
        from channels.models import BufferRule, Channel, Listing
        from channels.pipeline import outbox
        from inventory.services import stock_changed

        stock_changed.connect(outbox.on_stock_changed, dispatch_uid="channels.pipeline.outbox")
        post_save.connect(receivers.on_buffer_rule_changed, sender=BufferRule)
        post_delete.connect(receivers.on_buffer_rule_changed, sender=BufferRule)
        post_save.connect(receivers.on_listing_saved, sender=Listing)
        post_save.connect(receivers.on_channel_saved, sender=Channel)
        bom_changed.connect(receivers.on_bom_changed, dispatch_uid="channels.bom")
        m2m_changed.connect(
            receivers.on_channel_locations_changed, sender=Channel.locations.through
        )
