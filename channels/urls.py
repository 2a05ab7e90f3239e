"""Webhook receivers, included under /webhooks/."""

from django.urls import path

from channels.pipeline import receive

app_name = "channels_webhooks"

urlpatterns = [
    path("<str:platform>/<slug:channel_slug>/", receive.receive_webhook, name="receive"),
]
