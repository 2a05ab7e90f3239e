"""Console route of the alerts page, included at /dashboard/."""

from django.urls import path

from channels.views import alerts

app_name = "alerts"

urlpatterns = [
    path("alerts/", alerts.alert_list_view, name="list"),
]
