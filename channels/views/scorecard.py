"""The console's front page: sync health at a glance."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from channels import kpis
from channels.views.access import console_page


@console_page(read_permission="channels.view_channel")
def scorecard_view(request: HttpRequest) -> HttpResponse:
    """The scorecard of every channel and overall."""
    return render(
        request,
        "channels/scorecard.html",
        {"channels": kpis.channels_in_console_order()},
    )
