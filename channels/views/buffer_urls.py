"""Console routes of the bulk edits, included at /dashboard/."""

from django.urls import path

from channels.views import buffers

app_name = "buffers"

urlpatterns = [
    path("buffers/", buffers.bulk_buffers_view, name="bulk"),
    path("channel-modes/", buffers.channel_modes_view, name="channel-modes"),
]
