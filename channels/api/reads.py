"""REST API v1, reads for machines: the SKU map (listings), buffer rules and alerts.

Same layout as ``channels.api.apis``: one view per operation, nested serializers, pages of
``nventory.api.ListApi``. Reading needs the model's ``view_`` permission (403 without).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from channels import alerts
from channels.models import Alert, BufferRule, Channel, Listing, ListingSyncState
from nventory import permissions
from nventory.api import BAD_REQUEST, ListApi, validated_input


def require_view(request: Request, model: type[Model]) -> None:
    """403 unless the user may read ``model`` (its ``view_`` permission)."""
    permissions.require(request.user, f"{model._meta.app_label}.view_{model._meta.model_name}")


class ChannelRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "slug", "name", "platform", "mode"]


class ListingListApi(ListApi):
    read_permission = "channels.view_listing"

    class FilterSerializer(serializers.Serializer):
        channel = serializers.CharField(required=False, max_length=64, help_text="Channel slug.")
        sku = serializers.CharField(required=False, max_length=64, help_text="SKU code.")
        mapped = serializers.BooleanField(
            required=False, allow_null=True, default=None, help_text="false: the mapping gaps."
        )
        is_active = serializers.BooleanField(required=False, allow_null=True, default=None)

    class OutputSerializer(serializers.ModelSerializer):
        class SkuSerializer(serializers.Serializer):
            code = serializers.CharField()
            name = serializers.CharField()
            category = serializers.CharField()

        class SyncStateSerializer(serializers.ModelSerializer):
            class Meta:
                model = ListingSyncState
                fields = [
                    "last_pushed_quantity",
                    "last_pushed_at",
                    "expected_channel_quantity",
                    "updated_at",
                ]

        channel = ChannelRefSerializer(read_only=True)
        sku = SkuSerializer(read_only=True, allow_null=True)
        # Null: never pushed.
        sync_state = SyncStateSerializer(read_only=True, allow_null=True)

        class Meta:
            model = Listing
            fields = [
                "id",
                "channel",
                "sku",
                "external_id",
                "external_sku",
                "extra_identifiers",
                "is_active",
                "fulfilled_by_channel",
                "sync_state",
                "created_at",
            ]

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
        description="The SKU map: every listing with its channel, SKU and what was last "
        "pushed to it. Each listing's arithmetic: /listings/{id}/explanation/.",
    )
    def get(self, request: Request) -> Response:
        require_view(request, Listing)
        filters: dict[str, Any] = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        listings = Listing.objects.select_related("channel", "sku", "sync_state").order_by("pk")
        if channel := filters.get("channel"):
            listings = listings.filter(channel__slug=channel)
        if sku := filters.get("sku"):
            listings = listings.filter(sku__code=sku)
        if filters.get("mapped") is not None:
            listings = listings.filter(sku__isnull=not filters["mapped"])
        if filters.get("is_active") is not None:
            listings = listings.filter(is_active=filters["is_active"])
        return self.paginated_response(listings, self.OutputSerializer)


class BufferRuleListApi(ListApi):
    read_permission = "channels.view_bufferrule"

    class FilterSerializer(serializers.Serializer):
        channel = serializers.CharField(required=False, max_length=64, help_text="Channel slug.")
        sku = serializers.CharField(required=False, max_length=64, help_text="SKU code.")
        scope = serializers.ChoiceField(choices=["channel", "sku", "listing"], required=False)

    class OutputSerializer(serializers.ModelSerializer):
        channel = ChannelRefSerializer(read_only=True)
        sku: serializers.Field = serializers.SlugRelatedField(
            slug_field="code", read_only=True, allow_null=True
        )
        scope = serializers.SerializerMethodField()

        class Meta:
            model = BufferRule
            fields = [
                "id",
                "channel",
                "scope",
                "sku",
                "listing",
                "percent",
                "fixed_units",
                "max_cap",
                "cap_starts_at",
                "cap_ends_at",
                "created_at",
                "updated_at",
            ]

        def get_scope(self, rule: BufferRule) -> str:
            if rule.listing_id is not None:
                return "listing"
            return "sku" if rule.sku_id is not None else "channel"

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
        description="Buffer rules: each channel's default and its overrides per SKU or "
        "listing (the narrowest wins).",
    )
    def get(self, request: Request) -> Response:
        require_view(request, BufferRule)
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        rules = BufferRule.objects.select_related("channel", "sku").order_by("pk")
        if channel := filters.get("channel"):
            rules = rules.filter(channel__slug=channel)
        if sku := filters.get("sku"):
            rules = rules.filter(sku__code=sku)
        scope = filters.get("scope")
        if scope == "channel":
            rules = rules.filter(sku__isnull=True, listing__isnull=True)
        elif scope == "sku":
            rules = rules.filter(sku__isnull=False)
        elif scope == "listing":
            rules = rules.filter(listing__isnull=False)
        return self.paginated_response(rules, self.OutputSerializer)


class AlertListApi(ListApi):
    read_permission = "channels.view_alert"

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Alert.Kind.choices, required=False)
        open = serializers.BooleanField(
            required=False, default=False, help_text="true: only the alerts not cleared yet."
        )

    class OutputSerializer(serializers.ModelSerializer):
        channel = ChannelRefSerializer(read_only=True, allow_null=True)

        class Meta:
            model = Alert
            fields = [
                "id",
                "kind",
                "key",
                "channel",
                "message",
                "figures",
                "opened_at",
                "cleared_at",
                "opened_email_sent_at",
                "cleared_email_sent_at",
            ]

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
        description="Alerts, newest first: each opened when its condition started and "
        "cleared when it ended.",
    )
    def get(self, request: Request) -> Response:
        require_view(request, Alert)
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        history = alerts.alert_history(
            kind=filters.get("kind", ""), only_open=filters.get("open", False)
        )
        return self.paginated_response(history, self.OutputSerializer)
