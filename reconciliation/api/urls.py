"""Routes of the reconciliation API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from reconciliation.api import settlements

app_name = "reconciliation_api"

urlpatterns = [
    path(
        "discrepancies/<int:discrepancy_id>/accept-channel-figure/",
        settlements.DiscrepancyAcceptChannelFigureApi.as_view(),
        name="discrepancy-accept-channel-figure",
    ),
    path(
        "discrepancies/<int:discrepancy_id>/push-master-figure/",
        settlements.DiscrepancyPushMasterFigureApi.as_view(),
        name="discrepancy-push-master-figure",
    ),
]
