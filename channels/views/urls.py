"""Console routes, included at /dashboard/ (namespace ``dashboard``)."""

from django.urls import include, path

app_name = "dashboard"

urlpatterns = [
    # The scorecard, the channels page and the charts show reconciliation's figures beside
    # the channels' (reconciliation may import channels, not the reverse): they live in
    # the reconciliation app, in this namespace.
    path("", include("reconciliation.dashboard_urls")),
]
