"""Routes of the sync-pipeline API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from channels.api import apis, reads, workflows

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
    # The operator's workflows (channels.api.workflows).
    path(
        "dead-letters/replay/",
        workflows.DeadLetterBulkReplayApi.as_view(),
        name="dead-letter-bulk-replay",
    ),
    path(
        "dead-letters/discard/",
        workflows.DeadLetterBulkDiscardApi.as_view(),
        name="dead-letter-bulk-discard",
    ),
    path(
        "dead-letters/<int:dead_letter_id>/discard/",
        workflows.DeadLetterDiscardApi.as_view(),
        name="dead-letter-discard",
    ),
    path(
        "oversell-incidents/<int:incident_id>/acknowledge/",
        workflows.OversellIncidentAcknowledgeApi.as_view(),
        name="oversell-incident-acknowledge",
    ),
    path(
        "oversell-incidents/<int:incident_id>/root-cause/",
        workflows.OversellIncidentRootCauseApi.as_view(),
        name="oversell-incident-root-cause",
    ),
    path(
        "oversell-incidents/<int:incident_id>/resolve/",
        workflows.OversellIncidentResolveApi.as_view(),
        name="oversell-incident-resolve",
    ),
    path("unmapped-lines/", workflows.UnmappedLineListApi.as_view(), name="unmapped-line-list"),
    path(
        "unmapped-lines/<int:unmapped_line_id>/map/",
        workflows.UnmappedLineMapApi.as_view(),
        name="unmapped-line-map",
    ),
    path("listings/<int:listing_id>/map/", workflows.ListingMapApi.as_view(), name="listing-map"),
    path(
        "webhook-receipts/",
        workflows.WebhookReceiptListApi.as_view(),
        name="webhook-receipt-list",
    ),
    path(
        "webhook-receipts/reprocess/",
        workflows.WebhookReceiptBulkReprocessApi.as_view(),
        name="webhook-receipt-bulk-reprocess",
    ),
    path(
        "webhook-receipts/<int:receipt_id>/",
        workflows.WebhookReceiptDetailApi.as_view(),
        name="webhook-receipt-detail",
    ),
    path(
        "webhook-receipts/<int:receipt_id>/reprocess/",
        workflows.WebhookReceiptReprocessApi.as_view(),
        name="webhook-receipt-reprocess",
    ),
    path("listings/", reads.ListingListApi.as_view(), name="listing-list"),
    path("buffer-rules/", reads.BufferRuleListApi.as_view(), name="buffer-rule-list"),
    path("alerts/", reads.AlertListApi.as_view(), name="alert-list"),
]
