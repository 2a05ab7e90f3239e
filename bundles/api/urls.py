"""Routes of the bundles API, included under /api/v1/ by nventory/urls.py."""

from django.urls import path

from bundles.api import apis

app_name = "bundles_api"

urlpatterns = [
    path("bundles/", apis.BundleListCreateApi.as_view(), name="bundle-list"),
    path("bundles/<code:code>/", apis.BundleDetailUpdateApi.as_view(), name="bundle-detail"),
]
