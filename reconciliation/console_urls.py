"""Reconciliation's console pages, included under /dashboard/ by nventory/urls.py."""

from django.urls import path

from reconciliation import views

app_name = "reconciliation_console"

urlpatterns = [
    path("discrepancies/", views.discrepancies_view, name="discrepancies"),
    path(
        "discrepancies/<int:discrepancy_id>/accept-channel-figure/",
        views.accept_channel_figure_view,
        name="accept-channel-figure",
    ),
    path(
        "discrepancies/<int:discrepancy_id>/push-master-figure/",
        views.push_master_figure_view,
        name="push-master-figure",
    ),
]
