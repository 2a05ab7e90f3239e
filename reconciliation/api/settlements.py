"""REST API v1 of settling a reconciliation discrepancy: take the channel's figure (a stock
adjustment) or push the master's. Each view is an ``ActionApi`` calling one
``reconciliation.services`` function, which checks the caller's permission and records who
settled it."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from inventory.models import Location
from nventory import permissions
from nventory.api import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    ActionApi,
    ConflictSerializer,
)
from reconciliation import services
from reconciliation.models import Discrepancy

CONFLICT = OpenApiResponse(
    ConflictSerializer,
    description="Settled already, found again by a later run, no figure to take, or a "
    "decrease beyond what is available.",
)


class DiscrepancySettlementOutputSerializer(serializers.ModelSerializer):
    channel: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    sku: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Discrepancy
        fields = [
            "id",
            "run",
            "channel",
            "listing",
            "sku",
            "expected",
            "actual",
            "cause",
            "detected_at",
            "settlement",
            "settled_at",
            "settled_by",
            "adjustment_event",
        ]


class _DiscrepancySettleApi(ActionApi):
    write_permission = permissions.SETTLE_DISCREPANCIES
    target = Discrepancy
    OutputSerializer = DiscrepancySettlementOutputSerializer
    responses = {
        200: DiscrepancySettlementOutputSerializer,
        400: BAD_REQUEST,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
    }
    description = ""


class DiscrepancyAcceptChannelFigureApi(_DiscrepancySettleApi):
    description = (
        "Take the channel's figure as the truth: on hand is adjusted by what the channel "
        "showed less what the master listed (one ledger event, once)."
    )

    class InputSerializer(serializers.Serializer):
        location = serializers.CharField(
            required=False,
            help_text="Code of the location to adjust, one the channel sells from; the "
            "first of them when left out.",
        )

    def perform(self, data: dict[str, Any]) -> Discrepancy:
        location_id = None
        if code := data.get("location"):
            location_id = get_object_or_404(Location, code=code).pk
        return services.accept_channel_figure(
            discrepancy_id=self.kwargs["discrepancy_id"],
            location_id=location_id,
            actor=self.request.user,
        )


class DiscrepancyPushMasterFigureApi(_DiscrepancySettleApi):
    description = "Owe the listing a push of the master's figure as it is when sent."

    def perform(self, data: dict[str, Any]) -> Discrepancy:
        return services.push_master_figure(
            discrepancy_id=self.kwargs["discrepancy_id"], actor=self.request.user
        )
