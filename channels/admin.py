"""Admin for channels, the SKU map (listings) and buffer rules.

Channel secrets (credentials, webhook secret) never appear on a page: they are write-only.
Every edit of a channel, its locations, a listing or a buffer rule is made by
``channels.services`` (``save_model``, ``save_related``, ``delete_model``,
``delete_queryset``), which owes the affected listings their pushes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Model, Q, QuerySet
from django.db.models.functions import Abs
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from import_export.admin import ImportExportModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from channels import selectors, services, workflows
from channels.models import (
    Alert,
    BufferRule,
    BufferSnapshot,
    Channel,
    ChannelAlert,
    ChannelBreaker,
    ChannelOperation,
    DeadLetter,
    DriftRecord,
    Listing,
    ListingSyncState,
    MarketplaceLocation,
    OrderPoll,
    OversellIncident,
    PendingPush,
    PushAttempt,
    PushRollup,
    PushRollupBacklog,
    SubmittedWrite,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import alerts, enqueue, marketplace_stock
from channels.resources import ListingResource
from nventory import permissions


def _adopt(obj: Model, saved: Model) -> None:
    """Make the admin's unsaved instance the row a service created, for the admin's log
    message and redirect that follow."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


class ChannelAdminForm(forms.ModelForm):
    """The channel's secrets are write-only: no page shows them, a blank field keeps them.

    The form only validates; ``ChannelAdmin.save_model`` hands its values to the services
    (a new webhook secret to ``services.rotate_webhook_secret``).
    """

    # A bare host is taken as https (Django 6's default, asked for now).
    api_base_url = forms.URLField(max_length=500, assume_scheme="https")
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the secret that is set.",
    )
    end_rotation = forms.BooleanField(
        required=False,
        label="Previous webhook secret revoked",
        help_text="Stop accepting webhooks signed with the secret the current one replaced.",
    )
    credentials = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Write-only: a JSON object such as {"access_token": "…"} replaces the '
        "credentials; leave blank to keep them.",
    )

    class Meta:
        model = Channel
        fields = [
            "platform",
            "name",
            "slug",
            "mode",
            "api_base_url",
            "credentials",
            "webhook_secret",
            "locations",
            "rate_limit_per_s",
            "out_of_stock_threshold",
            "settle_window_s",
            "max_push_attempts",
            "platform_settings",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read before the form's values are put on the instance: a new secret replaces it.
        self.secret_set = self.instance.webhook_secret if self.instance.pk else ""
        self.initial["webhook_secret"] = ""
        self.initial["credentials"] = None
        if self.instance.pk:
            names = ", ".join(sorted(self.instance.credentials)) or "none"
            self.fields["credentials"].help_text += f" Set now: {names} (values hidden)."
            if self.instance.webhook_secret:
                self.fields["webhook_secret"].help_text += (
                    " A secret is set; a new one replaces it, and the old one is still "
                    "accepted for a while (the platform may have webhooks signed with it)."
                )
            rotation_ends = self.instance.previous_webhook_secret_until
            if self.instance.previous_webhook_secret and rotation_ends:
                self.fields[
                    "webhook_secret"
                ].help_text += (
                    f" The previous secret is accepted until {rotation_ends:%Y-%m-%d %H:%M %Z}."
                )

    def clean_webhook_secret(self) -> str:
        value: str = self.cleaned_data.get("webhook_secret") or ""
        if (
            value
            and value != self.secret_set
            and (problem := services.webhook_secret_problem(value))
        ):
            raise forms.ValidationError(problem)
        return value or self.secret_set

    def clean_credentials(self) -> dict[str, Any]:
        value = self.cleaned_data.get("credentials")
        if value in (None, ""):
            return dict(self.instance.credentials) if self.instance.pk else {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Credentials are a JSON object of names and values.")
        return value


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    # No credentials or webhook_secret here: list views never show secrets.
    list_display = (
        "name",
        "slug",
        "platform",
        "mode",
        "api_base_url",
        "rate_limit_per_s",
        "out_of_stock_threshold",
        "mapping_gaps_link",
        "circuit_breaker",
        "created_at",
    )
    list_filter = ("platform", "mode")
    list_select_related = ("breaker",)
    search_fields = ("name", "slug")
    filter_horizontal = ("locations",)
    readonly_fields = ("circuit_breaker", "created_at")
    actions = ["try_again_now", "read_recent_orders"]

    @admin.display(description="Circuit breaker")
    def circuit_breaker(self, channel: Channel) -> str:
        try:
            state = channel.breaker
        except ChannelBreaker.DoesNotExist:
            return str(ChannelBreaker.State.CLOSED.label)
        now = timezone.now()
        match state.state(now):
            case ChannelBreaker.State.OPEN:
                assert state.open_until is not None
                return (
                    f"Open for {(state.open_until - now).total_seconds():.0f} s more, "
                    f"after {state.failures} failed calls: {state.last_error[:120]}"
                )
            case ChannelBreaker.State.HALF_OPEN:
                return "Half-open: the next push run probes the channel"
            case ChannelBreaker.State.FAILING:
                return f"Closed, {state.failures} failed calls in a row: {state.last_error[:120]}"
        return str(ChannelBreaker.State.CLOSED.label)

    def save_model(
        self, request: HttpRequest, obj: Channel, form: ChannelAdminForm, change: bool
    ) -> None:
        """Through the services: settings (a change that alters what is pushed owes every
        listing a push), then a new webhook secret as a rotation, or the rotation's end."""
        fields = services.ChannelFields.of(obj)
        secret: str = form.cleaned_data.get("webhook_secret") or ""
        if not change:
            created = services.create_channel(
                fields=fields,
                webhook_secret=secret,
                location_ids=[location.pk for location in form.cleaned_data.get("locations", [])],
            )
            _adopt(obj, created)
            return
        services.update_channel(channel_id=obj.pk, fields=fields)
        if secret and secret != form.secret_set:
            services.rotate_webhook_secret(channel_id=obj.pk, new_secret=secret)
        elif form.cleaned_data.get("end_rotation"):
            services.revoke_previous_webhook_secret(channel_id=obj.pk)
        obj.refresh_from_db()

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Sequence[Any], change: bool
    ) -> None:
        """The locations through ``services.set_channel_locations`` (a new set owes every
        listing a push), never the form's own m2m save."""
        # A page without the field (a read-only one) leaves the locations as they are.
        if "locations" in form.cleaned_data:
            services.set_channel_locations(
                channel_id=form.instance.pk,
                location_ids=[location.pk for location in form.cleaned_data["locations"]],
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_manage_channels_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(permissions.MANAGE_CHANNELS)

    @admin.action(
        description="Try the channel again now (an open circuit breaker probes it)",
        permissions=["manage_channels"],
    )
    def try_again_now(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        opened = services.try_channels_again_now(channel_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            f"{opened} open circuit breaker(s) will probe their channel at the next push run.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Read recent orders now (ingests any whose events never came)",
        permissions=["manage_channels"],
    )
    def read_recent_orders(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        queued = 0
        for channel_id in queryset.values_list("pk", flat=True):
            enqueue.enqueue_order_poll(channel_id=channel_id)
            queued += 1
        self.message_user(
            request,
            f"The recent orders of {queued} channel(s) will be read in a moment; any found "
            "unrecorded show up as webhook receipts with a 'poll:' delivery id.",
            messages.SUCCESS,
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:channel_id>/mapping-gaps/",
                self.admin_site.admin_view(self.mapping_gaps_view),
                name="channels_channel_mapping_gaps",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Map")
    def mapping_gaps_link(self, channel: Channel) -> str:
        url = reverse("admin:channels_channel_mapping_gaps", args=[channel.pk])
        return format_html('<a href="{}">gaps</a>', url)

    def mapping_gaps_view(self, request: HttpRequest, channel_id: int) -> HttpResponse:
        channel = get_object_or_404(Channel, pk=channel_id)
        if not self.has_view_permission(request, channel):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Mapping gaps of {channel.name}",
            "gaps": selectors.mapping_gaps(channel=channel),
        }
        return TemplateResponse(request, "admin/channels/mapping_gaps.html", context)


@admin.register(Listing)
class ListingAdmin(ImportExportModelAdmin, SimpleHistoryAdmin):
    resource_classes = [ListingResource]
    list_display = (
        "external_id",
        "external_sku",
        "channel",
        "sku",
        "is_active",
        "fulfilled_by_channel",
        "pending_write",
        "created_at",
    )
    list_select_related = ("channel", "sku", "submitted_write")
    list_filter = (
        "channel",
        "is_active",
        "fulfilled_by_channel",
        ("sku", admin.EmptyFieldListFilter),
    )
    search_fields = ("external_id", "external_sku", "sku__code")
    autocomplete_fields = ("sku",)
    readonly_fields = ("created_at", "pending_write", "explanation")

    @admin.display(description="Waiting on the channel")
    def pending_write(self, listing: Listing) -> str:
        return _pending_write_text(listing)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Listing | None = None
    ) -> Sequence[str]:
        fields = super().get_readonly_fields(request, obj)
        # The platform ids belong to the channel: a listing never moves to another one.
        return (*fields, "channel") if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Listing, form: Any, change: bool) -> None:
        """Through the services: a new SKU mapping owes the listing a push."""
        fields = services.ListingFields.of(obj)
        if change:
            services.update_listing(listing_id=obj.pk, fields=fields)
        else:
            _adopt(obj, services.create_listing(fields=fields))

    @admin.display(description="How the listed quantity is worked out")
    def explanation(self, listing: Listing) -> str:
        if listing.pk is None:
            return "-"
        steps = selectors.explain_listing(listing=listing).steps
        return format_html_join(
            "", "<div>{}: <b>{}</b></div>", ((step.label, step.quantity) for step in steps)
        )


def _pending_write_text(listing: Listing) -> str:
    """ "pending on Amazon for 4 minutes (7 units)" while the channel has accepted a write
    and not applied it (any platform with asynchronous writes); "-" otherwise."""
    if listing.pk is None:
        return "-"
    try:
        write = listing.submitted_write
    except SubmittedWrite.DoesNotExist:
        return "-"
    age = timesince(write.submitted_at, timezone.now())
    return (
        f"pending on {listing.channel.get_platform_display()} for {age} "
        f"({write.quantity} units, attempt {write.attempt_number})"
    )


class VelocityRiseFilter(admin.SimpleListFilter):
    title = "velocity guard"
    parameter_name = "velocity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("rising", "holding a rise")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "rising":
            return queryset.filter(velocity_units__gt=0)
        return queryset


@admin.register(BufferRule)
class BufferRuleAdmin(SimpleHistoryAdmin):
    list_display = (
        "__str__",
        "channel",
        "sku",
        "listing",
        "percent",
        "fixed_units",
        "max_cap",
        "cap_starts_at",
        "cap_ends_at",
        "velocity_rise",
        "updated_at",
    )
    list_select_related = ("channel", "sku", "listing")
    list_filter = ("channel", VelocityRiseFilter)
    search_fields = ("channel__name", "sku__code", "listing__external_id", "listing__external_sku")
    raw_id_fields = ("listing",)
    autocomplete_fields = ("sku",)
    # The velocity guard's: shown, set and cleared by it alone (its history says why).
    readonly_fields = (
        "velocity_units",
        "velocity_until",
        "velocity_only",
        "created_at",
        "updated_at",
    )

    @admin.display(description="velocity guard", ordering="velocity_units")
    def velocity_rise(self, rule: BufferRule) -> str:
        if not rule.velocity_units:
            return "-"
        until = timezone.localtime(rule.velocity_until) if rule.velocity_until else None
        held = f" (looked at again {until:%H:%M:%S})" if until else ""
        return f"+{rule.velocity_units} held back{held}"

    # Adds a "Preview effect" button that shows, before saving, what the rule would list.
    change_form_template = "admin/channels/bufferrule/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="channels_bufferrule_preview",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: BufferRule, form: Any, change: bool) -> None:
        """Through the services: the listings the rule governs, before and after, owe a push."""
        fields = services.BufferRuleFields.of(obj)
        if change:
            services.update_buffer_rule(rule_id=obj.pk, fields=fields)
        else:
            _adopt(obj, services.create_buffer_rule(fields=fields))

    def delete_model(self, request: HttpRequest, obj: BufferRule) -> None:
        services.delete_buffer_rules(rule_ids=[obj.pk])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BufferRule]) -> None:
        """The bulk "delete selected" owes pushes as a single delete does."""
        services.delete_buffer_rules(rule_ids=queryset.values_list("pk", flat=True))

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The unsaved rule's effect on the listings it would govern (an htmx fragment)."""
        object_id = request.GET.get("object_id")
        rule = BufferRule.objects.filter(pk=object_id).first() if object_id else None
        if not (
            self.has_change_permission(request, rule) if rule else self.has_add_permission(request)
        ):
            raise PermissionDenied
        form = self.get_form(request, rule)(data=request.GET, instance=rule)
        if not form.is_valid():
            return TemplateResponse(
                request, "admin/channels/bufferrule/preview.html", {"errors": form.errors}
            )
        rows = selectors.preview_buffer_rule(rule=form.instance)
        return TemplateResponse(request, "admin/channels/bufferrule/preview.html", {"rows": rows})


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Records the pipeline writes: operators read them, never edit them by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class HeldFilter(admin.SimpleListFilter):
    """Listings the platform will not take before a time (a daily revision cap)."""

    title = "held by the platform"
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Held"), ("no", "Not held")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.exclude(held_reason="")
        if self.value() == "no":
            return queryset.filter(held_reason="")
        return queryset


@admin.register(PendingPush)
class PendingPushAdmin(_ReadOnlyAdmin):
    list_display = (
        "listing",
        "channel",
        "target_quantity",
        "generation",
        "attempts",
        "first_change_at",
        "not_before",
        "claimed_until",
        "held_reason",
    )
    list_select_related = ("listing", "channel")
    list_filter = ("channel", HeldFilter)
    search_fields = ("listing__external_id", "listing__sku__code")


@admin.register(PushAttempt)
class PushAttemptAdmin(_ReadOnlyAdmin):
    list_display = (
        "sent_at",
        "channel",
        "listing",
        "target_quantity",
        "compare_quantity",
        "channel_quantity",
        "outcome",
        "attempt_number",
        "latency_ms",
        "error",
    )
    list_select_related = ("listing", "channel")
    list_filter = ("outcome", "channel")
    search_fields = ("listing__external_id", "listing__sku__code", "error")
    date_hierarchy = "sent_at"


@admin.register(PushRollup)
class PushRollupAdmin(_ReadOnlyAdmin):
    """What the console's KPIs are read from; the push attempts are added in by the
    roll-up (``channels.kpis.roll_up_pushes``)."""

    list_display = ("start", "span_s", "channel", "sends", "errors", "failed_sends", "pushes")
    list_select_related = ("channel",)
    list_filter = ("span_s", "channel")
    date_hierarchy = "start"


@admin.register(PushRollupBacklog)
class PushRollupBacklogAdmin(_ReadOnlyAdmin):
    """Push attempts not rolled up yet. The beat rolls them up every few seconds: a list
    that keeps growing means its task ``channels.roll_up_pushes`` is not running."""

    list_display = ("attempt_id",)


@admin.register(BufferSnapshot)
class BufferSnapshotAdmin(_ReadOnlyAdmin):
    list_display = (
        "channel",
        "taken_at",
        "available_units",
        "listed_units",
        "held_back_units",
    )
    list_select_related = ("channel",)


@admin.register(DeadLetter)
class DeadLetterAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "listing",
        "target_quantity",
        "status",
        "replayed_at",
        "replayed_by",
        "discarded_by",
        "discard_reason",
    )
    list_select_related = ("listing", "channel")
    list_filter = ("status", "channel")
    search_fields = ("listing__external_id", "listing__sku__code")
    actions = ["replay"]

    # The admin is read-only (no change permission for anyone), so the action names the
    # operation's own permission.
    def has_handle_dead_letters_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(permissions.HANDLE_DEAD_LETTERS)

    @admin.action(
        description="Replay: push the master's quantity again, with fresh tries",
        permissions=["handle_dead_letters"],
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        """Through ``channels.workflows`` (the permission is checked, who replayed kept)."""
        replayed = workflows.replay_dead_letters(
            dead_letter_ids=queryset.values_list("pk", flat=True), actor=request.user
        )
        self.message_user(request, f"Replayed {len(replayed)} dead letter(s).", messages.SUCCESS)


@admin.register(SubmittedWrite)
class SubmittedWriteAdmin(_ReadOnlyAdmin):
    """Writes a platform accepted and has not applied yet (feeds, jobs)."""

    list_display = ("submitted_at", "age", "channel", "listing", "quantity", "submission_id")
    list_select_related = ("listing", "channel")

    @admin.display(description="Waiting for", ordering="submitted_at")
    def age(self, write: SubmittedWrite) -> str:
        return timesince(write.submitted_at, timezone.now())

    list_filter = ("channel",)
    search_fields = ("submission_id", "listing__external_id")


@admin.register(MarketplaceLocation)
class MarketplaceLocationAdmin(admin.ModelAdmin):
    """Stock a channel holds itself (Amazon FBA), one location per region: read from the
    channel, never pushed. Adding one creates its marketplace-fulfilled location."""

    list_display = ("channel", "marketplace_id", "location", "counted_until", "last_error")
    list_select_related = ("channel", "location")
    fields = ("channel", "marketplace_id", "location", "counted_until", "last_error")

    def get_readonly_fields(
        self, request: HttpRequest, obj: MarketplaceLocation | None = None
    ) -> tuple[str, ...]:
        always = ("location", "counted_until", "last_error")
        return (*always, "channel", "marketplace_id") if obj is not None else always

    def save_model(
        self, request: HttpRequest, obj: MarketplaceLocation, form: Any, change: bool
    ) -> None:
        if change:
            return  # nothing of it is editable
        opened = marketplace_stock.open_marketplace_location(
            channel=obj.channel, marketplace_id=obj.marketplace_id
        )
        obj.pk, obj.location = opened.pk, opened.location


@admin.register(OrderPoll)
class OrderPollAdmin(_ReadOnlyAdmin):
    """How far back each channel's orders were read, and the last poll's error."""

    list_display = ("channel", "polled_until", "last_error")
    list_select_related = ("channel",)


@admin.register(ListingSyncState)
class ListingSyncStateAdmin(_ReadOnlyAdmin):
    """What we last told each channel, and what we expect it to show now."""

    list_display = (
        "listing",
        "channel",
        "last_pushed_quantity",
        "last_pushed_at",
        "expected_channel_quantity",
        "pending_write",
        "unexplained_channel_moves",
        "unexplained_moves_until",
    )
    list_select_related = ("listing__channel", "listing__submitted_write")
    list_filter = ("listing__channel",)
    search_fields = ("listing__external_id", "listing__external_sku", "listing__sku__code")

    @admin.display(ordering="listing__channel")
    def channel(self, state: ListingSyncState) -> Channel:
        return state.listing.channel

    @admin.display(description="Waiting on the channel")
    def pending_write(self, state: ListingSyncState) -> str:
        return _pending_write_text(state.listing)


class _ExplainedFilter(admin.SimpleListFilter):
    """Drift the channel's own webhooks later accounted for (sales in flight), or not."""

    title = "explained by the channel's webhooks"
    parameter_name = "explained"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        return [("yes", "Yes: a sale in flight"), ("no", "No: real drift")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DriftRecord]) -> QuerySet:
        moved = Abs(F("channel_quantity") - F("expected_quantity"))
        explained = Q(explained_units__gte=moved, explained_units__gt=0)
        if self.value() == "yes":
            return queryset.filter(explained)
        if self.value() == "no":
            return queryset.exclude(explained)
        return queryset


@admin.register(DriftRecord)
class DriftRecordAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "listing",
        "expected_quantity",
        "channel_quantity",
        "master_quantity",
        "detected_by",
        "sale_in_flight",
        "explained_by",
    )
    list_select_related = ("listing", "channel")
    list_filter = ("detected_by", "channel", _ExplainedFilter)
    search_fields = ("listing__external_id", "listing__sku__code", "explained_by")

    @admin.display(description="Sale in flight", boolean=True)
    def sale_in_flight(self, drift: DriftRecord) -> bool:
        return drift.explained


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(_ReadOnlyAdmin):
    list_display = (
        "received_at",
        "channel",
        "topic",
        "dedupe_key",
        "status",
        "attempts",
        "awaited_until",
        "reprocessed_by",
    )
    list_select_related = ("channel",)
    list_filter = ("status", "channel", "topic")
    search_fields = ("dedupe_key", "topic", "error")
    exclude = ("body",)
    readonly_fields = ("body_text",)
    date_hierarchy = "received_at"
    actions = ["reprocess"]

    def has_reprocess_receipts_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(permissions.REPROCESS_RECEIPTS)

    @admin.action(
        description="Reprocess (failed, quarantined, order never came): apply once",
        permissions=["reprocess_receipts"],
    )
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookReceipt]) -> None:
        """Through ``channels.workflows``: only receipts nothing was applied of are sent."""
        sent = workflows.reprocess_receipts(
            receipt_ids=queryset.values_list("pk", flat=True), actor=request.user
        )
        self.message_user(
            request, f"{len(sent)} receipt(s) will be processed again.", messages.SUCCESS
        )

    @admin.display(description="Body")
    def body_text(self, receipt: WebhookReceipt) -> str:
        return bytes(receipt.body).decode("utf-8", errors="replace")


@admin.register(OversellIncident)
class OversellIncidentAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "sku",
        "order_reference",
        "shortfall",
        "acknowledged_by",
        "root_cause",
        "resolved_at",
        "resolved_by",
    )
    list_select_related = ("channel", "sku")
    list_filter = ("channel", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("order_reference", "sku__code")


@admin.register(UnmappedLine)
class UnmappedLineAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "line_reference",
        "identifiers",
        "quantity",
        "reason",
        "resolved_at",
        "resolved_by",
    )
    list_select_related = ("channel",)
    list_filter = ("channel", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("line_reference",)


@admin.register(Alert)
class AlertAdmin(_ReadOnlyAdmin):
    """Alerts are opened and cleared by their evaluation (channels.alerts), never by hand."""

    list_display = ("kind", "channel", "message", "opened_at", "cleared_at")
    list_filter = ("kind", "channel")
    list_select_related = ("channel",)
    search_fields = ("key", "message")
    date_hierarchy = "opened_at"


@admin.register(ChannelOperation)
class ChannelOperationAdmin(_ReadOnlyAdmin):
    """Who switched a channel's mode or ran a poll or full sync from the console."""

    list_display = ("created_at", "channel", "action", "actor", "detail")
    list_select_related = ("channel",)
    list_filter = ("action", "channel")
    search_fields = ("actor",)


@admin.register(ChannelAlert)
class ChannelAlertAdmin(_ReadOnlyAdmin):
    """What an operator must look at, per channel; resolved by hand once looked at."""

    list_display = ("last_seen_at", "channel", "kind", "message", "occurrences", "resolved_at")
    list_select_related = ("channel",)
    list_filter = ("kind", "channel", ("resolved_at", admin.EmptyFieldListFilter))
    actions = ["mark_resolved"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_manage_channels_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(permissions.MANAGE_CHANNELS)

    @admin.action(description="Mark resolved (looked at)", permissions=["manage_channels"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[ChannelAlert]) -> None:
        permissions.require(request.user, permissions.MANAGE_CHANNELS)
        resolved = alerts.resolve_alerts(alert_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{resolved} alerts resolved.", messages.SUCCESS)
