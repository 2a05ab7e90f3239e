"""The console's channel pages, included under /dashboard/ by nventory/urls.py."""

from channels.views import workflows

app_name = "dashboard"

urlpatterns = [
    *workflows.urlpatterns,
]
