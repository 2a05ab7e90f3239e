"""Routes of the reconciliation API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from reconciliation.api import apis, settlements

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
    path("reconciliation-runs/", apis.ReconciliationRunListApi.as_view(), name="run-list"),
    path(
        "reconciliation-runs/<int:run_id>/",
        apis.ReconciliationRunDetailApi.as_view(),
        name="run-detail",
    ),
    path(
        "reconciliation-runs/<int:run_id>/discrepancies/",
        apis.RunDiscrepancyListApi.as_view(),
        name="run-discrepancy-list",
    ),
    path("discrepancies/", apis.DiscrepancyListApi.as_view(), name="discrepancy-list"),
]
