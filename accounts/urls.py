"""Console pages of accounts, included at /dashboard/tokens/ (namespace ``tokens``)."""

from django.urls import path

from accounts import views

app_name = "tokens"

urlpatterns = [
    path("", views.tokens_view, name="list"),
    path("<int:token_id>/revoke/", views.revoke_token_view, name="revoke"),
]
