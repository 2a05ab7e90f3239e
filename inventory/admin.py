"""Admin for the inventory app.

Operators edit SKUs and locations here. Stock levels, the ledger and reservations are
read-only: every stock change made from the admin goes through ``inventory.services``.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from inventory import services
from inventory.models import (
    EventSource,
    InventoryEvent,
    Location,
    MarketplaceStock,
    Reservation,
    Sku,
    StockLevel,
)
from nventory import permissions
from nventory.errors import ApplicationError, Conflict

if TYPE_CHECKING:
    from django.template.backends.base import _EngineTemplate

# Model permissions that gate the service calls made from the admin pages.
STOCK_CHANGE_PERMISSION = permissions.RECEIVE_ADJUST_TRANSFER
RELEASE_PERMISSION = permissions.RELEASE_ANY_RESERVATION


class ReadOnlyAdminMixin:
    """No add, change or delete: the admin shows the rows as a read-only view."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StockLevelInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StockLevel
    fields = ("location", "on_hand", "committed", "reserved", "available")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockLevel]:
        return super().get_queryset(request).select_related("location")

    @admin.display(description="Available")
    def available(self, obj: StockLevel) -> int:
        return obj.available


class MarketplaceStockInline(ReadOnlyAdminMixin, admin.TabularInline):
    """What a marketplace holds of the SKU (Amazon FBA): only fulfillable is on hand; the
    other states are shown for the operator and never counted as available."""

    model = MarketplaceStock
    fields = (
        "location",
        "fulfillable",
        "inbound",
        "reserved",
        "researching",
        "unfulfillable",
        "future_supply",
        "counted_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "stock held by a marketplace"
    verbose_name_plural = "stock held by marketplaces (only fulfillable is sellable)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[MarketplaceStock]:
        return super().get_queryset(request).select_related("location")


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "category",
        "is_active",
        "on_hand_total",
        "available_total",
        "stock_link",
    )
    list_filter = ("is_active", "category")
    search_fields = ("code", "name", "category")
    fields = ("code", "name", "category", "is_active", "stock_link", "created_at", "updated_at")
    readonly_fields = ("stock_link", "created_at", "updated_at")
    inlines = (StockLevelInline, MarketplaceStockInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sku]:
        levels = "stock_levels__"
        return (
            super()
            .get_queryset(request)
            .annotate(
                on_hand_units=Coalesce(Sum(f"{levels}on_hand"), Value(0)),
                available_units=Coalesce(
                    Sum(F(f"{levels}on_hand") - F(f"{levels}committed") - F(f"{levels}reserved")),
                    Value(0),
                ),
            )
        )

    @admin.display(description="On hand (all locations)", ordering="on_hand_units")
    def on_hand_total(self, obj: Sku) -> int:
        return int(getattr(obj, "on_hand_units", 0))

    @admin.display(description="Available (all locations)", ordering="available_units")
    def available_total(self, obj: Sku) -> int:
        return int(getattr(obj, "available_units", 0))

    @admin.display(description="Stock")
    def stock_link(self, obj: Sku | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the SKU first."
        url = reverse("admin:inventory_sku_stock", args=[obj.pk])
        return format_html('<a href="{}">Receive or adjust stock</a>', url)

    def get_urls(self) -> list[URLPattern]:
        stock_view = self.admin_site.admin_view(self.stock_view)
        return [
            path("<int:sku_id>/stock/", stock_view, name="inventory_sku_stock"),
            *super().get_urls(),
        ]

    def stock_view(self, request: HttpRequest, sku_id: int) -> HttpResponse:
        """Receive or adjust one SKU's stock at a location through the services."""
        if not request.user.has_perm(STOCK_CHANGE_PERMISSION):
            raise PermissionDenied
        sku = get_object_or_404(Sku, pk=sku_id)
        if request.method == "POST":
            form = StockChangeForm(request.POST)
            if form.is_valid():
                try:
                    event = form.apply(sku=sku, actor=request.user.get_username())
                except services.IdempotencyKeyReused:
                    form.add_error(
                        None,
                        "This form was already submitted with other values. "
                        "Reload the page to record another change.",
                    )
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    kind, location = event.get_kind_display(), form.cleaned_data["location"]
                    self.message_user(
                        request,
                        f"{kind} of {sku} at {location} recorded: on hand"
                        f" {event.on_hand_after}, available {event.available_after}.",
                        messages.SUCCESS,
                    )
                    # Redirect so that reloading the page cannot post the change again.
                    return HttpResponseRedirect(request.path)
        else:
            form = StockChangeForm(initial={"location": request.GET.get("location")})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Receive or adjust stock: {sku}",
            "opts": self.opts,
            "sku": sku,
            "app_url": reverse("admin:app_list", args=[self.opts.app_label]),
            "changelist_url": reverse("admin:inventory_sku_changelist"),
            "change_url": reverse("admin:inventory_sku_change", args=[sku.pk]),
            "levels": sku.stock_levels.select_related("location").order_by("location__code"),
            "form": form,
        }
        return TemplateResponse(request, _stock_form_template(), context)


class StockChangeForm(forms.Form):
    """One receipt or adjustment, keyed by a hidden key so a double submit records once."""

    class Operation(models.TextChoices):
        RECEIVE = "receive", "Receive: units arrived (a purchase-order receipt)"
        ADJUST = "adjust", "Adjust: correct on hand after a count, a loss or damage"

    location = forms.ModelChoiceField(queryset=Location.objects.filter(is_active=True))
    operation = forms.ChoiceField(
        choices=Operation.choices, initial=Operation.RECEIVE, widget=forms.RadioSelect
    )
    quantity = forms.IntegerField(
        help_text="Units received, or the change for an adjustment (negative removes units)."
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required for an adjustment.",
    )
    external_reference = forms.CharField(
        required=False, max_length=255, help_text="Purchase order, count sheet, ticket."
    )
    idempotency_key = forms.RegexField(
        regex=r"^admin:stock:[0-9a-f-]{36}$", widget=forms.HiddenInput
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("idempotency_key", f"admin:stock:{uuid.uuid4()}")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        operation, quantity = cleaned.get("operation"), cleaned.get("quantity")
        if quantity is None:
            return cleaned
        if operation == self.Operation.RECEIVE and quantity <= 0:
            self.add_error("quantity", "A receipt adds units: enter a positive number.")
        if operation == self.Operation.ADJUST:
            if quantity == 0:
                self.add_error("quantity", "An adjustment must change the quantity.")
            if not cleaned.get("reason", "").strip():
                self.add_error("reason", "An adjustment needs a reason.")
        return cleaned

    def apply(self, *, sku: Sku, actor: str) -> InventoryEvent:
        """Record the change through the services; raises their ApplicationError."""
        data = self.cleaned_data
        context = services.EventContext(
            idempotency_key=data["idempotency_key"],
            source=EventSource.ADMIN,
            actor=actor,
            external_reference=data["external_reference"],
            reason=data["reason"],
        )
        if data["operation"] == self.Operation.RECEIVE:
            return services.receive_stock(
                sku_id=sku.pk,
                location_id=data["location"].pk,
                quantity=data["quantity"],
                context=context,
            )
        return services.adjust_stock(
            sku_id=sku.pk, location_id=data["location"].pk, delta=data["quantity"], context=context
        )


# Kept beside its only view rather than in templates/ to keep the admin in one module.
_STOCK_FORM_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{{ app_url }}">{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{{ changelist_url }}">{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; <a href="{{ change_url }}">{{ sku }}</a>
&rsaquo; Stock
</div>{% endblock breadcrumbs %}
{% block content %}
<p>{{ sku.name }}</p>
<table>
<thead><tr>
<th>Location</th><th>On hand</th><th>Committed</th><th>Reserved</th><th>Available</th>
</tr></thead>
<tbody>
{% for level in levels %}<tr>
<td>{{ level.location }}</td><td>{{ level.on_hand }}</td><td>{{ level.committed }}</td>
<td>{{ level.reserved }}</td><td>{{ level.available }}</td>
</tr>
{% empty %}<tr><td colspan="5">No stock recorded yet.</td></tr>
{% endfor %}
</tbody>
</table>
<form method="post" novalidate>{% csrf_token %}
<fieldset class="module aligned">{{ form.as_div }}</fieldset>
<div class="submit-row"><input type="submit" class="default" value="Record"></div>
</form>
{% endblock content %}
"""


@functools.cache
def _stock_form_template() -> _EngineTemplate:
    return engines["django"].from_string(_STOCK_FORM_TEMPLATE)


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "sku",
        "location",
        "on_hand",
        "committed",
        "reserved",
        "available",
        "updated_at",
        "change_link",
    )
    list_select_related = ("sku", "location")
    list_filter = ("location__kind", "location")
    search_fields = ("sku__code", "sku__name", "location__code")
    fields = ("sku", "location", "on_hand", "committed", "reserved", "available", "updated_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockLevel]:
        return (
            super()
            .get_queryset(request)
            .annotate(available_units=F("on_hand") - F("committed") - F("reserved"))
        )

    @admin.display(description="Available", ordering="available_units")
    def available(self, obj: StockLevel) -> int:
        return obj.available

    @admin.display(description="Change")
    def change_link(self, obj: StockLevel) -> str:
        url = reverse("admin:inventory_sku_stock", args=[obj.sku_id])
        return format_html('<a href="{}?location={}">Receive or adjust</a>', url, obj.location_id)


class OversoldFilter(admin.SimpleListFilter):
    title = "oversold"
    parameter_name = "oversold"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "With a shortfall"), ("no", "Without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(shortfall__gt=0)
        if self.value() == "no":
            return queryset.filter(shortfall=0)
        return queryset


@admin.register(InventoryEvent)
class InventoryEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "kind",
        "sku",
        "location",
        "delta_on_hand",
        "delta_committed",
        "delta_reserved",
        "available_after",
        "shortfall",
        "source",
        "actor",
        "external_reference",
    )
    list_select_related = ("sku", "location")
    list_filter = ("kind", "source", OversoldFilter, "location")
    # Exact matches: the ledger is the largest table and these columns are indexed.
    search_fields = ("=sku__code", "=external_reference", "=idempotency_key", "=actor")
    # Counting the whole ledger on every page load is slow once it grows.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields] + ["available_after"]

    @admin.display(description="Available after")
    def available_after(self, obj: InventoryEvent) -> int:
        return obj.available_after


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "sku",
        "location",
        "quantity",
        "status",
        "expires_at",
        "external_reference",
        "created_at",
    )
    list_select_related = ("sku", "location")
    list_filter = ("status", "location")
    search_fields = ("=sku__code", "=external_reference", "=idempotency_key")
    actions = ("release_selected_reservations",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields] + ["ledger_events"]

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RELEASE_PERMISSION)

    @admin.display(description="Ledger events")
    def ledger_events(self, obj: Reservation) -> str:
        events = obj.events.order_by("pk")
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:inventory_inventoryevent_change", args=[e.pk]), e.kind)
                for e in events
            ),
        )

    @admin.action(description="Release selected reservations", permissions=["release"])
    def release_selected_reservations(
        self, request: HttpRequest, queryset: QuerySet[Reservation]
    ) -> None:
        """Give the held units back to available, one service call per reservation."""
        released = 0
        skipped: list[str] = []
        for reservation_id, status in queryset.order_by("pk").values_list("pk", "status"):
            if status != Reservation.Status.ACTIVE:
                skipped.append(f"#{reservation_id} ({status})")
                continue
            try:
                services.release_reservation(
                    reservation_id=reservation_id,
                    context=services.EventContext(
                        idempotency_key=f"admin:release:{reservation_id}",
                        source=EventSource.ADMIN,
                        actor=request.user.get_username(),
                        reason="Released in the admin",
                    ),
                )
            except Conflict as exc:
                # Confirmed or expired between the listing and the lock.
                skipped.append(f"#{reservation_id} ({exc.extra.get('status', 'changed')})")
            else:
                released += 1
        if released:
            self.message_user(request, f"Released {released} reservation(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Not active, left as they are: {', '.join(skipped)}.", messages.WARNING
            )
