"""Bulk edits (under /dashboard/): buffer rules for many SKUs or a whole category, with a
preview of their effect before saving, and the mode of several channels at once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from channels import bulk_edits
from channels.models import BufferRule, Channel
from nventory import permissions
from nventory.errors import ApplicationError

RECENT_CHANGES = 20


class HtmxHttpRequest(HttpRequest):
    """A request as ``django_htmx.middleware.HtmxMiddleware`` leaves it (for the types)."""

    htmx: HtmxDetails


class BulkBufferForm(forms.Form):
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.order_by("slug"), widget=forms.CheckboxSelectMultiple
    )
    sku_codes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="SKU codes",
        help_text="One per line, or separated by commas or spaces.",
    )
    category = forms.ChoiceField(required=False, label="…or every SKU of the category")
    percent = forms.DecimalField(
        min_value=Decimal(0), max_value=Decimal(100), decimal_places=2, initial=Decimal(10)
    )
    fixed_units = forms.IntegerField(min_value=0, initial=0)
    max_cap = forms.IntegerField(min_value=0, required=False, label="Max cap (blank: none)")
    reason = forms.CharField(max_length=100, help_text="Recorded in each rule's history.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "—")] + [(name, name) for name in bulk_edits.categories()]
        self.fields["category"].choices = choices  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        codes = cleaned.get("sku_codes", "").replace(",", " ").split()
        cleaned["sku_code_list"] = codes
        if not codes and not cleaned.get("category"):
            raise ValidationError("Name some SKUs or a category.")
        return cleaned

    def values(self) -> bulk_edits.BufferValues:
        return bulk_edits.BufferValues(
            percent=self.cleaned_data["percent"],
            fixed_units=self.cleaned_data["fixed_units"],
            max_cap=self.cleaned_data["max_cap"],
        )

    def sku_ids(self) -> list[int]:
        return list(
            bulk_edits.skus_in_selection(
                sku_codes=self.cleaned_data["sku_code_list"],
                category=self.cleaned_data["category"],
            ).values_list("pk", flat=True)
        )

    def channel_ids(self) -> list[int]:
        return [channel.pk for channel in self.cleaned_data["channels"]]


@login_required
@permission_required("channels.view_bufferrule", raise_exception=True)
@require_http_methods(["GET", "POST"])
def bulk_buffers_view(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the form and the latest rule changes; with ``preview``, what the edit would
    list (the preview alone when htmx asks). POST: save the rules."""
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = BulkBufferForm(data)
    preview = None
    if request.method == "POST" and form.is_valid():
        try:
            result = bulk_edits.apply_bulk_buffer_rules(
                actor=request.user,
                channel_ids=form.channel_ids(),
                sku_ids=form.sku_ids(),
                values=form.values(),
                reason=form.cleaned_data["reason"],
            )
        except PermissionDenied:
            messages.error(request, "Saving buffer rules needs the permission to edit buffers.")
        except (ApplicationError, ValidationError) as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request,
                f"Buffer rules saved: {result.created} created, {result.updated} changed, "
                f"{result.unchanged} already so.",
            )
            return redirect("buffers:bulk")
    elif request.method == "GET" and "preview" in request.GET and form.is_valid():
        preview = bulk_edits.preview_bulk_buffer_rules(
            channel_ids=form.channel_ids(), sku_ids=form.sku_ids(), values=form.values()
        )
    context = {
        "form": form,
        "preview": preview,
        "may_edit": request.user.has_perm(permissions.EDIT_BUFFERS),
        "recent_changes": BufferRule.history.select_related(
            "channel", "sku", "history_user"
        ).order_by("-history_date")[:RECENT_CHANGES],
    }
    template = "channels/bulk_buffers.html"
    if request.htmx and request.method == "GET":
        template += "#bulk-preview"
    return render(request, template, context)


class ChannelModesForm(forms.Form):
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.order_by("slug"), widget=forms.CheckboxSelectMultiple
    )
    mode = forms.ChoiceField(choices=Channel.Mode.choices)
    confirm = forms.BooleanField(
        label="I understand: active pushes quantities, paused and shadow push nothing."
    )


@login_required
@permission_required("channels.view_channel", raise_exception=True)
@require_http_methods(["GET", "POST"])
def channel_modes_view(request: HttpRequest) -> HttpResponse:
    """Switch several channels between active, shadow and paused, with a confirmation."""
    form = ChannelModesForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            changed = bulk_edits.set_channel_modes(
                actor=request.user,
                channel_ids=[channel.pk for channel in form.cleaned_data["channels"]],
                mode=form.cleaned_data["mode"],
            )
        except PermissionDenied:
            messages.error(request, "Switching channels needs the permission to manage them.")
        else:
            names = ", ".join(channel.name for channel in changed) or "none (already so)"
            messages.success(request, f"Switched: {names}.")
            return redirect("buffers:channel-modes")
    return render(
        request,
        "channels/channel_modes.html",
        {
            "form": form,
            "channels": Channel.objects.order_by("slug"),
            "may_manage": request.user.has_perm(permissions.MANAGE_CHANNELS),
        },
    )
