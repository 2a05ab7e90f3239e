from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from nventory.api import SchemaApi
from nventory.api_root import ApiRootApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", ApiRootApi.as_view(), name="api-root"),
    path("api/v1/", include("inventory.api.urls")),
    path("api/v1/", include("channels.api.urls")),
    path("api/v1/", include("bundles.api.urls")),
    path("api/v1/", include("reconciliation.api.urls")),
    path("webhooks/", include("channels.urls")),
    path("reconciliation/", include("reconciliation.urls")),
    path("dashboard/skus/", include("inventory.console_urls")),
    path("dashboard/skus/", include("channels.views.sku_urls")),
    path("dashboard/", include("channels.views.buffer_urls")),
    path("dashboard/", include("channels.views.alert_urls")),
    path("api/schema/", SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "nventory.errors.page_not_found"
handler500 = "nventory.errors.server_error"
