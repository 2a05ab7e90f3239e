"""The site's URLs plus the bundles API, for tests that run before it is wired into
nventory/urls.py; once it is, this is the site's URLs unchanged."""

from django.urls import include, path

from nventory.urls import urlpatterns as site_urlpatterns

_wired = any(getattr(pattern, "namespace", None) == "bundles_api" for pattern in site_urlpatterns)

urlpatterns = [
    *site_urlpatterns,
    *([] if _wired else [path("api/v1/", include("bundles.api.urls"))]),
]
