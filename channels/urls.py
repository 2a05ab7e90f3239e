"""Webhook receivers, included under /webhooks/."""

from django.urls import path

from channels import webhooks

app_name = "channels_webhooks"

urlpatterns = [
    path("<str:platform>/<slug:channel_slug>/", webhooks.receive_webhook, name="receive"),
]
