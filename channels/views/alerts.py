"""The alerts page (under /dashboard/alerts/) and the banner every console page shows."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from channels import alerts
from channels.models import Alert

ALERTS_PER_PAGE = 50


@login_required
@permission_required("channels.view_alert", raise_exception=True)
def alert_list_view(request: HttpRequest) -> HttpResponse:
    """Every alert, newest first, open ones marked; filtered by kind and by being open."""
    kind = request.GET.get("kind", "")
    if kind not in Alert.Kind.values:
        kind = ""
    only_open = request.GET.get("open") == "1"
    page = Paginator(alerts.alert_history(kind=kind, only_open=only_open), ALERTS_PER_PAGE)
    return render(
        request,
        "channels/alerts.html",
        {
            "page": page.get_page(request.GET.get("page")),
            "kinds": Alert.Kind.choices,
            "kind": kind,
            "only_open": only_open,
        },
    )


def alert_banners(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the open alerts as banners of the base layout (one query, and
    none for a visitor who is not signed in)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    url = reverse("alerts:list") + "?open=1"
    return {
        "alert_banners": lambda: [
            {"level": "error", "message": f"Alert: {alert.message}", "url": url}
            for alert in alerts.open_alerts()
        ]
    }
