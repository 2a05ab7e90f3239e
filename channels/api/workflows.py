"""REST API v1 of the operator's workflows: dead letters replayed or discarded, oversell
incidents handled, waiting lines mapped, failed and quarantined receipts reprocessed.

One view per operation over ``channels.workflows`` (each checks the caller's permission and
records who acted) and ``channels.selectors``; the shapes are nested serializers. Each
write is an ``ActionApi`` whose ``perform`` is its service call.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from channels import selectors, workflows
from channels.api.apis import DeadLetterOutputSerializer, OversellIncidentOutputSerializer
from channels.models import (
    REPROCESSABLE_RECEIPT_STATUSES,
    Channel,
    DeadLetter,
    Listing,
    OversellIncident,
    UnmappedLine,
    WebhookReceipt,
)
from inventory.models import Sku
from nventory import permissions
from nventory.api import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    ActionApi,
    ApiView,
    ConflictSerializer,
    ListApi,
    validated_input,
)

CONFLICT = OpenApiResponse(ConflictSerializer, description="Not in a state that allows it.")


def _channel_id(slug: str | None) -> int | None:
    """The ``channel`` filter (a slug) as an id (None: no filter). An unknown slug filters
    everything out, as the other lists' channel filters do: an empty page, not a 404."""
    if not slug:
        return None
    return Channel.objects.filter(slug=slug).values_list("pk", flat=True).first() or 0


# --- dead letters --------------------------------------------------------------------------


class DeadLetterIdsSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000
    )


class DeadLettersOutputSerializer(serializers.Serializer):
    dead_letters = DeadLetterOutputSerializer(many=True)


class DeadLetterBulkReplayApi(ActionApi):
    write_permission = permissions.HANDLE_DEAD_LETTERS
    OutputSerializer = DeadLettersOutputSerializer
    responses = {200: DeadLettersOutputSerializer, 400: BAD_REQUEST, 403: FORBIDDEN}
    operation_id = "dead_letters_replay_many"
    description = (
        "Replay every open dead letter among ``ids``; those replayed or discarded already "
        "are left as they are. Answers the ones replayed."
    )

    class InputSerializer(DeadLetterIdsSerializer):
        pass

    def perform(self, data: dict[str, Any]) -> dict[str, Any]:
        replayed = workflows.replay_dead_letters(
            dead_letter_ids=data["ids"], actor=self.request.user
        )
        return {"dead_letters": replayed}


class DeadLetterDiscardApi(ActionApi):
    write_permission = permissions.HANDLE_DEAD_LETTERS
    target = DeadLetter
    OutputSerializer = DeadLetterOutputSerializer
    responses = {
        200: DeadLetterOutputSerializer,
        400: BAD_REQUEST,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
    }
    description = "Close an open dead letter without pushing it again, with the reason."

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    def perform(self, data: dict[str, Any]) -> DeadLetter:
        return workflows.discard_dead_letter(
            dead_letter_id=self.kwargs["dead_letter_id"],
            reason=data["reason"],
            actor=self.request.user,
        )


class DeadLetterBulkDiscardApi(ActionApi):
    write_permission = permissions.HANDLE_DEAD_LETTERS
    OutputSerializer = DeadLettersOutputSerializer
    responses = {200: DeadLettersOutputSerializer, 400: BAD_REQUEST, 403: FORBIDDEN}
    operation_id = "dead_letters_discard_many"
    description = (
        "Discard every open dead letter among ``ids`` with one reason; answers the ones discarded."
    )

    class InputSerializer(DeadLetterIdsSerializer):
        reason = serializers.CharField(max_length=2000)

    def perform(self, data: dict[str, Any]) -> dict[str, Any]:
        discarded = workflows.discard_dead_letters(
            dead_letter_ids=data["ids"], reason=data["reason"], actor=self.request.user
        )
        return {"dead_letters": discarded}


# --- oversell incidents --------------------------------------------------------------------


class _OversellIncidentActionApi(ActionApi):
    write_permission = permissions.HANDLE_OVERSELLS
    target = OversellIncident
    OutputSerializer = OversellIncidentOutputSerializer
    responses = {
        200: OversellIncidentOutputSerializer,
        400: BAD_REQUEST,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
    }
    description = ""


class OversellIncidentAcknowledgeApi(_OversellIncidentActionApi):
    description = "Mark the incident seen; the first acknowledgement is kept."

    def perform(self, data: dict[str, Any]) -> OversellIncident:
        return workflows.acknowledge_oversell(
            incident_id=self.kwargs["incident_id"], actor=self.request.user
        )


class OversellIncidentRootCauseApi(_OversellIncidentActionApi):
    description = "Record why the oversell happened (replaces an earlier note)."

    class InputSerializer(serializers.Serializer):
        root_cause = serializers.CharField(max_length=5000)

    def perform(self, data: dict[str, Any]) -> OversellIncident:
        return workflows.note_oversell_root_cause(
            incident_id=self.kwargs["incident_id"],
            root_cause=data["root_cause"],
            actor=self.request.user,
        )


class OversellIncidentResolveApi(_OversellIncidentActionApi):
    description = "Close the incident; it needs a root cause, noted before or given here."

    class InputSerializer(serializers.Serializer):
        root_cause = serializers.CharField(max_length=5000, required=False, allow_blank=True)

    def perform(self, data: dict[str, Any]) -> OversellIncident:
        return workflows.resolve_oversell(
            incident_id=self.kwargs["incident_id"],
            root_cause=data.get("root_cause", ""),
            actor=self.request.user,
        )


# --- waiting lines and mapping gaps --------------------------------------------------------


class UnmappedLineOutputSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class ReceiptSerializer(serializers.ModelSerializer):
        class Meta:
            model = WebhookReceipt
            fields = ["id", "topic", "dedupe_key", "received_at"]

    receipt = ReceiptSerializer(read_only=True)

    class Meta:
        model = UnmappedLine
        fields = [
            "id",
            "channel",
            "receipt",
            "line_reference",
            "identifiers",
            "quantity",
            "reason",
            "created_at",
            "resolved_at",
            "resolved_by",
            "listing",
        ]


class UnmappedLineListApi(ListApi):
    read_permission = "channels.view_unmappedline"

    class FilterSerializer(serializers.Serializer):
        channel = serializers.SlugField(required=False, help_text="Channel slug.")

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: UnmappedLineOutputSerializer(many=True), 400: BAD_REQUEST},
        description="Order lines waiting for a listing: mapping it applies them.",
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        lines = selectors.waiting_lines(channel_id=_channel_id(filters.get("channel")))
        return self.paginated_response(lines, UnmappedLineOutputSerializer)


class MappedOutputSerializer(serializers.Serializer):
    """What mapping did: the listing, the waiting lines applied, those still waiting."""

    listing = serializers.IntegerField(allow_null=True, source="listing.pk")
    lines_applied = serializers.IntegerField()
    lines_waiting = serializers.IntegerField()


class UnmappedLineMapApi(ActionApi):
    write_permission = permissions.HANDLE_UNMAPPED_LINES
    target = UnmappedLine
    OutputSerializer = MappedOutputSerializer
    responses = {
        200: MappedOutputSerializer,
        400: BAD_REQUEST,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
    }
    description = (
        "Map the line's item to a SKU (a new listing from the line's identifiers, or the gap "
        "listing they find), then apply every waiting line of the channel that maps now, "
        "once each."
    )

    class InputSerializer(serializers.Serializer):
        sku = serializers.CharField(help_text="The code of the SKU the line's item is.")
        external_id = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=255,
            help_text="The platform's stock-bearing id, where the line does not carry it "
            "(a Shopify order line names the variant, not its inventory item).",
        )

    def perform(self, data: dict[str, Any]) -> workflows.Reapplied:
        return workflows.map_unmapped_line(
            unmapped_line_id=self.kwargs["unmapped_line_id"],
            sku_id=get_object_or_404(Sku, code=data["sku"]).pk,
            external_id=data.get("external_id", ""),
            actor=self.request.user,
        )


class ListingMapApi(ActionApi):
    write_permission = permissions.MAP_LISTINGS
    target = Listing
    OutputSerializer = MappedOutputSerializer
    responses = {200: MappedOutputSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND}
    description = (
        "Give a listing with no SKU (a mapping gap) its SKU, then apply every waiting line of "
        "its channel that maps now, once each."
    )

    class InputSerializer(serializers.Serializer):
        sku = serializers.CharField(help_text="The code of the SKU the listing is.")

    def perform(self, data: dict[str, Any]) -> workflows.Reapplied:
        return workflows.map_listing(
            listing_id=self.kwargs["listing_id"],
            sku_id=get_object_or_404(Sku, code=data["sku"]).pk,
            actor=self.request.user,
        )


# --- webhook receipts ----------------------------------------------------------------------


class WebhookReceiptOutputSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = WebhookReceipt
        fields = [
            "id",
            "channel",
            "topic",
            "dedupe_key",
            "received_at",
            "status",
            "error",
            "attempts",
            "processed_at",
            "awaited_order",
            "awaited_until",
            "reprocessed_at",
            "reprocessed_by",
        ]


class WebhookReceiptListApi(ListApi):
    read_permission = "channels.view_webhookreceipt"

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=[str(status) for status in REPROCESSABLE_RECEIPT_STATUSES],
            required=False,
            help_text="One of the statuses an operator may reprocess; all of them when left out.",
        )
        channel = serializers.SlugField(required=False, help_text="Channel slug.")

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: WebhookReceiptOutputSerializer(many=True), 400: BAD_REQUEST},
        description="Receipts that failed, were quarantined or whose order never came.",
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        receipts = selectors.receipts_to_handle(
            status=filters.get("status", ""), channel_id=_channel_id(filters.get("channel"))
        )
        return self.paginated_response(receipts, WebhookReceiptOutputSerializer)


class WebhookReceiptDetailApi(ApiView):
    read_permission = "channels.view_webhookreceipt"

    class OutputSerializer(WebhookReceiptOutputSerializer):
        class BodySerializer(serializers.Serializer):
            text = serializers.CharField(
                help_text="The body's first bytes as text (undecodable bytes replaced)."
            )
            size_bytes = serializers.IntegerField()
            truncated = serializers.BooleanField()

        body = BodySerializer(read_only=True)

        class Meta(WebhookReceiptOutputSerializer.Meta):
            fields = [*WebhookReceiptOutputSerializer.Meta.fields, "headers", "body"]

    @extend_schema(
        responses={200: OutputSerializer, 404: NOT_FOUND},
        description="One receipt with its headers and the start of its raw body "
        "(at most 64 KiB of it).",
    )
    def get(self, request: Request, receipt_id: int) -> Response:
        receipt = get_object_or_404(
            WebhookReceipt.objects.select_related("channel").defer("body"), pk=receipt_id
        )
        receipt.body = selectors.receipt_body(receipt_id=receipt_id)
        return Response(self.OutputSerializer(receipt).data)


class WebhookReceiptReprocessApi(ActionApi):
    write_permission = permissions.REPROCESS_RECEIPTS
    target = WebhookReceipt
    OutputSerializer = WebhookReceiptOutputSerializer
    responses = {
        200: WebhookReceiptOutputSerializer,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
    }
    description = (
        "Send a failed, quarantined or order-never-came receipt through ingest again (after "
        "a fix); it is applied once."
    )

    def perform(self, data: dict[str, Any]) -> WebhookReceipt:
        return workflows.reprocess_receipt(
            receipt_id=self.kwargs["receipt_id"], actor=self.request.user
        )


class WebhookReceiptBulkReprocessApi(ActionApi):
    write_permission = permissions.REPROCESS_RECEIPTS
    operation_id = "webhook_receipts_reprocess_many"
    description = (
        "Reprocess every failed, quarantined or order-never-came receipt among ``ids``; the "
        "others are left alone. Answers the ids sent through ingest again."
    )

    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000
        )

    class OutputSerializer(serializers.Serializer):
        reprocessed = serializers.ListField(child=serializers.IntegerField())

    responses = {200: OutputSerializer, 400: BAD_REQUEST, 403: FORBIDDEN}

    def perform(self, data: dict[str, Any]) -> dict[str, list[int]]:
        ids = workflows.reprocess_receipts(receipt_ids=data["ids"], actor=self.request.user)
        return {"reprocessed": ids}
