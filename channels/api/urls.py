"""Routes of the sync-pipeline API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from channels.api import apis, reads

app_name = "channels_api"

urlpatterns = [
    path("channels/", apis.ChannelListApi.as_view(), name="channel-list"),
    path(
        "listings/<int:listing_id>/explanation/",
        apis.ListingExplanationApi.as_view(),
        name="listing-explanation",
    ),
    path("dead-letters/", apis.DeadLetterListApi.as_view(), name="dead-letter-list"),
    path(
        "dead-letters/<int:dead_letter_id>/replay/",
        apis.DeadLetterReplayApi.as_view(),
        name="dead-letter-replay",
    ),
    path(
        "oversell-incidents/",
        apis.OversellIncidentListApi.as_view(),
        name="oversell-incident-list",
    ),
    path("listings/", reads.ListingListApi.as_view(), name="listing-list"),
    path("buffer-rules/", reads.BufferRuleListApi.as_view(), name="buffer-rule-list"),
    path("alerts/", reads.AlertListApi.as_view(), name="alert-list"),
]
