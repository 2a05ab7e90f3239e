"""Console pages of the inventory: the SKU search (each SKU's own page is drawn by
``channels.views.skus``, which can see its listings)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from inventory import selectors

SKUS_PER_PAGE = 50


class HtmxHttpRequest(HttpRequest):
    """A request as ``django_htmx.middleware.HtmxMiddleware`` leaves it (for the types)."""

    htmx: HtmxDetails


@login_required
@permission_required("inventory.view_sku", raise_exception=True)
def sku_list_view(request: HtmxHttpRequest) -> HttpResponse:
    """SKUs by code, searched by part of the code or name, with their stock totals; the
    rows alone when htmx asks (search as you type)."""
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.sku_list(search=search), SKUS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    totals = selectors.stock_totals_by_sku(sku_ids=[sku.pk for sku in page])
    rows = [(sku, totals.get(sku.pk)) for sku in page]
    template = "inventory/sku_list.html"
    if request.htmx:
        template += "#sku-rows"
    return render(request, template, {"page": page, "rows": rows, "search": search})
