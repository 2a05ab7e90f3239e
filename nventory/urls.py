from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from nventory.api import SchemaApi
from nventory.api_root import ApiRootApi

urlpatterns = [
    # First: hundreds of deliveries a second are resolved here, none of them a page.
    path("webhooks/", include("channels.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", ApiRootApi.as_view(), name="api-root"),
    path("api/v1/", include("inventory.api.urls")),
    path("api/v1/", include("channels.api.urls")),
    path("api/v1/", include("bundles.api.urls")),
    path("api/v1/", include("reconciliation.api.urls")),
    path("api/v1/", include("reconciliation.kpi_api")),
    path("reconciliation/", include("reconciliation.urls")),
    # The operator's console: sign-in with Django's auth views, pages under /dashboard/.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("dashboard/tokens/", include("accounts.urls")),
    path("dashboard/", include("channels.views.urls")),
    path("dashboard/", include("reconciliation.console_urls")),
    path("dashboard/skus/", include("inventory.console_urls")),
    path("dashboard/skus/", include("channels.views.sku_urls")),
    path("dashboard/", include("channels.views.buffer_urls")),
    path("dashboard/", include("channels.views.alert_urls")),
    # Prometheus scrapes /metrics (a bearer token, or a signed-in reader).
    path("", include("reconciliation.metrics")),
    path("api/schema/", SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "nventory.errors.bad_request"
handler403 = "nventory.errors.permission_denied"
handler404 = "nventory.errors.page_not_found"
handler500 = "nventory.errors.server_error"
