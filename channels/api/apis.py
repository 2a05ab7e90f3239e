"""REST API v1 of the sync pipeline: channels, listing explanations, dead letters, oversells.

Same layout as every app's API (bases in ``nventory.api``): one view per operation,
nested serializers, one selector or service call each. Channel secrets never leave the
server through here.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from channels import selectors, workflows
from channels.models import Channel, ChannelBreaker, DeadLetter, Listing, OversellIncident
from nventory import permissions
from nventory.api import (
    BAD_REQUEST,
    FORBIDDEN,
    ApiView,
    ConflictSerializer,
    ErrorSerializer,
    ListApi,
    validated_input,
)


class ChannelBreakerOutputSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = ChannelBreaker
        fields = ["state", "failures", "failing_since", "open_until", "last_error"]

    def get_state(self, breaker: ChannelBreaker) -> ChannelBreaker.State:
        return breaker.state(timezone.now())


class ChannelListApi(ListApi):
    read_permission = "channels.view_channel"

    class OutputSerializer(serializers.ModelSerializer):
        locations: serializers.Field = serializers.SlugRelatedField(
            slug_field="code", many=True, read_only=True
        )
        # Null: the channel's pushes never failed (closed).
        circuit_breaker = ChannelBreakerOutputSerializer(
            source="breaker", read_only=True, allow_null=True
        )

        class Meta:
            model = Channel
            # No credentials, no webhook secret.
            fields = [
                "id",
                "slug",
                "name",
                "platform",
                "mode",
                "api_base_url",
                "locations",
                "rate_limit_per_s",
                "out_of_stock_threshold",
                "settle_window_s",
                "max_push_attempts",
                "circuit_breaker",
            ]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        channels = (
            Channel.objects.prefetch_related("locations")
            .select_related("breaker")
            .order_by("slug")
        )
        return self.paginated_response(channels, self.OutputSerializer)


class ListingExplanationApi(ApiView):
    read_permission = "channels.view_listing"

    class OutputSerializer(serializers.Serializer):
        class StepSerializer(serializers.Serializer):
            step = serializers.CharField()
            quantity = serializers.IntegerField()

        listing = serializers.IntegerField()
        channel = serializers.CharField()
        sku = serializers.CharField(allow_null=True)
        steps = StepSerializer(many=True)
        listed = serializers.IntegerField()

    @extend_schema(
        responses={200: OutputSerializer, 404: OpenApiResponse(ErrorSerializer)},
        description="How the listing's quantity is derived: ATS over the channel's "
        "locations, then each buffer step, then the result.",
    )
    def get(self, request: Request, listing_id: int) -> Response:
        listing = get_object_or_404(
            Listing.objects.select_related("channel", "sku"), pk=listing_id
        )
        explanation = selectors.explain_listing(listing=listing)
        return Response(
            self.OutputSerializer(
                {
                    "listing": listing.pk,
                    "channel": listing.channel.slug,
                    "sku": listing.sku.code if listing.sku else None,
                    "steps": [
                        {"step": step.label, "quantity": step.quantity}
                        for step in explanation.steps
                    ],
                    "listed": explanation.listed,
                }
            ).data
        )


class DeadLetterOutputSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "channel",
            "listing",
            "target_quantity",
            "attempts",
            "status",
            "created_at",
            "replayed_at",
            "replayed_by",
            "discarded_at",
            "discarded_by",
            "discard_reason",
        ]


class DeadLetterListApi(ListApi):
    read_permission = "channels.view_deadletter"

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=DeadLetter.Status.choices, required=False)
        channel = serializers.CharField(
            required=False,
            max_length=Channel._meta.get_field("slug").max_length,
            help_text="Channel slug.",
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: DeadLetterOutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        dead_letters = DeadLetter.objects.select_related("channel").order_by("-created_at")
        if status := filters.get("status"):
            dead_letters = dead_letters.filter(status=status)
        if channel := filters.get("channel"):
            dead_letters = dead_letters.filter(channel__slug=channel)
        return self.paginated_response(dead_letters, DeadLetterOutputSerializer)


class DeadLetterReplayApi(ApiView):
    write_permission = permissions.HANDLE_DEAD_LETTERS

    @extend_schema(
        request=None,
        responses={
            200: DeadLetterOutputSerializer,
            403: FORBIDDEN,
            404: OpenApiResponse(ErrorSerializer),
            409: OpenApiResponse(ConflictSerializer, description="Not open (already replayed)."),
        },
        description="Owe the listing a fresh push of the master's quantity, with fresh tries.",
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        get_object_or_404(DeadLetter, pk=dead_letter_id)
        dead_letter = workflows.replay_dead_letter(
            dead_letter_id=dead_letter_id, actor=request.user
        )
        return Response(DeadLetterOutputSerializer(dead_letter).data)


class OversellIncidentOutputSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    sku: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = OversellIncident
        fields = [
            "id",
            "channel",
            "sku",
            "listing",
            "order_reference",
            "shortfall",
            "event",
            "created_at",
            "acknowledged_at",
            "acknowledged_by",
            "root_cause",
            "root_cause_noted_at",
            "root_cause_noted_by",
            "resolved_at",
            "resolved_by",
        ]


class OversellIncidentListApi(ListApi):
    read_permission = "channels.view_oversellincident"

    class FilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(
            choices=["open", "resolved", "all"], required=False, default="all"
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OversellIncidentOutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        incidents = selectors.oversell_incidents_to_handle(state=filters["state"])
        return self.paginated_response(incidents, OversellIncidentOutputSerializer)
