"""The SKU page and its safety-stock calculator (under /dashboard/skus/<code>/).

The SKU page lives with the channels because it shows the SKU's listings, pushes and
incidents, which the inventory app may not import.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from channels import safety_stock, sku_overview
from channels.models import Channel
from inventory.models import Sku
from nventory import permissions


class HtmxHttpRequest(HttpRequest):
    """A request as ``django_htmx.middleware.HtmxMiddleware`` leaves it (for the types)."""

    htmx: HtmxDetails


@login_required
@permission_required("inventory.view_sku", raise_exception=True)
def sku_detail_view(request: HttpRequest, code: str) -> HttpResponse:
    """Stock per location, each channel's listed quantity and its arithmetic, and the
    SKU's recent ledger events, pushes and oversells."""
    sku = get_object_or_404(Sku, code=code)
    return render(
        request, "channels/sku_detail.html", {"overview": sku_overview.sku_overview(sku=sku)}
    )


@login_required
@permission_required("channels.view_bufferrule", raise_exception=True)
@require_http_methods(["GET", "POST"])
def safety_stock_view(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """GET: the recommended buffer for the SKU on the chosen channel at the chosen risk
    tolerance, with its arithmetic (the recommendation alone when htmx asks). POST: save
    it as the SKU's buffer rule on that channel."""
    sku = get_object_or_404(Sku, code=code)
    channels = list(Channel.objects.order_by("slug"))
    if not channels:
        return render(request, "channels/safety_stock.html", {"sku": sku, "channels": []})
    data = request.POST if request.method == "POST" else request.GET
    channel = _chosen_channel(channels, data.get("channel"))
    tolerance = data.get("tolerance") or safety_stock.DEFAULT_TOLERANCE
    if tolerance not in safety_stock.TOLERANCE_FIGURES:
        tolerance = safety_stock.DEFAULT_TOLERANCE
    if request.method == "POST":
        try:
            rule = safety_stock.apply_recommended_buffer(
                actor=request.user, sku_id=sku.pk, channel_id=channel.pk, tolerance=tolerance
            )
        except PermissionDenied:
            messages.error(request, "Applying a buffer needs the permission to edit buffers.")
            return redirect(_calculator_url(sku, channel, tolerance))
        messages.success(
            request,
            f"Buffer on {channel.name} for {sku.code} is now {rule.percent} % + "
            f"{rule.fixed_units} units (recorded in the rule's history).",
        )
        return redirect(_calculator_url(sku, channel, tolerance))
    context = {
        "sku": sku,
        "channels": channels,
        "channel": channel,
        "tolerances": safety_stock.RiskTolerance.choices,
        "tolerance": tolerance,
        "recommendation": safety_stock.recommend_buffer(
            sku=sku, channel=channel, tolerance=tolerance
        ),
        "may_apply": request.user.has_perm(permissions.EDIT_BUFFERS),
    }
    template = "channels/safety_stock.html"
    if request.htmx:
        template += "#recommendation"
    return render(request, template, context)


def _chosen_channel(channels: list[Channel], wanted: str | None) -> Channel:
    for channel in channels:
        if str(channel.pk) == wanted:
            return channel
    return channels[0]


def _calculator_url(sku: Sku, channel: Channel, tolerance: str) -> str:
    return (
        reverse("skus:safety-stock", args=[sku.code])
        + f"?channel={channel.pk}&tolerance={tolerance}"
    )
