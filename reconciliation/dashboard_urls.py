"""Routes of the sync-health console pages, in the ``dashboard`` namespace
(``channels/views/urls.py`` includes them at /dashboard/)."""

from django.urls import path

from reconciliation import dashboard

urlpatterns = [
    path("", dashboard.scorecard_view, name="scorecard"),
    path("channels/", dashboard.channels_view, name="channels"),
    path("channels/<int:channel_id>/mode/", dashboard.channel_mode_view, name="channel-mode"),
    path("channels/<int:channel_id>/poll/", dashboard.channel_poll_view, name="channel-poll"),
    path(
        "channels/<int:channel_id>/full-sync/",
        dashboard.channel_full_sync_view,
        name="channel-full-sync",
    ),
    path("charts/", dashboard.charts_view, name="charts"),
]
