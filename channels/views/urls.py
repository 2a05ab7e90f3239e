"""Console routes about channels, included at /dashboard/ (namespace ``dashboard``)."""

from django.urls import path

from channels.views import scorecard

app_name = "dashboard"

urlpatterns = [
    path("", scorecard.scorecard_view, name="scorecard"),
]
