"""Reconciliation pages, included under /reconciliation/."""

from django.urls import path

from reconciliation import views

app_name = "reconciliation"

urlpatterns = [
    path("reports/", views.report_view, name="latest-report"),
    path("reports/<str:date>/", views.report_view, name="report"),
]
