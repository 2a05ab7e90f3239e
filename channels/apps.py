from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # Not the `channels` pip package (Django Channels): that one is never installed.
    name = "channels"
    verbose_name = "Sales channels"
