"""The project's URLs plus the reconciliation pages (if the project does not include them)."""

from django.urls import include, path

from nventory.urls import urlpatterns as project_urlpatterns

urlpatterns = list(project_urlpatterns)
if not any(getattr(pattern, "namespace", None) == "reconciliation" for pattern in urlpatterns):
    urlpatterns.append(path("reconciliation/", include("reconciliation.urls")))
