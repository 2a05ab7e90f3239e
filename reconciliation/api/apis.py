"""REST API v1 of reconciliation: runs and the discrepancies they found (reads).

Same layout as every app's API (bases in ``nventory.api``): one view per operation, nested
serializers, pages of ``ListApi``. Reading needs the model's ``view_`` permission.
"""

from __future__ import annotations

from django.db.models import Count, Model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from nventory import permissions
from nventory.api import BAD_REQUEST, ApiView, ErrorSerializer, ListApi, validated_input
from reconciliation.models import Discrepancy, ReconciliationRun


def _require_view(request: Request, model: type[Model]) -> None:
    permissions.require(request.user, f"{model._meta.app_label}.view_{model._meta.model_name}")


class RunOutputSerializer(serializers.ModelSerializer):
    channel: serializers.Field = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress_percent = serializers.FloatField(read_only=True)

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "channel",
            "kind",
            "status",
            "channel_mode",
            "started_at",
            "finished_at",
            "period_date",
            "listings_total",
            "listings_checked",
            "progress_percent",
            "skipped_in_flight",
            "found",
            "corrected",
            "drift_percent",
            "alerted_at",
            "figures",
            "error",
        ]


class DiscrepancyOutputSerializer(serializers.ModelSerializer):
    class ListingSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        external_id = serializers.CharField()
        external_sku = serializers.CharField()

    channel: serializers.Field = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    sku: serializers.Field = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )
    listing = ListingSerializer(read_only=True)

    class Meta:
        model = Discrepancy
        fields = [
            "id",
            "run",
            "channel",
            "listing",
            "sku",
            "category",
            "expected",
            "actual",
            "last_pushed_quantity",
            "last_pushed_at",
            "cause",
            "evidence",
            "consecutive_runs",
            "repeated",
            "corrected",
            "detected_at",
        ]


class ReconciliationRunListApi(ListApi):
    read_permission = "reconciliation.view_reconciliationrun"

    class FilterSerializer(serializers.Serializer):
        channel = serializers.CharField(required=False, max_length=64, help_text="Channel slug.")
        kind = serializers.ChoiceField(choices=ReconciliationRun.Kind.choices, required=False)
        status = serializers.ChoiceField(choices=ReconciliationRun.Status.choices, required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: RunOutputSerializer(many=True), 400: BAD_REQUEST},
        description="Reconciliation runs, newest first, with their progress and drift.",
    )
    def get(self, request: Request) -> Response:
        _require_view(request, ReconciliationRun)
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        runs = ReconciliationRun.objects.select_related("channel").order_by("-started_at", "-pk")
        if channel := filters.get("channel"):
            runs = runs.filter(channel__slug=channel)
        if kind := filters.get("kind"):
            runs = runs.filter(kind=kind)
        if status := filters.get("status"):
            runs = runs.filter(status=status)
        return self.paginated_response(runs, RunOutputSerializer)


class ReconciliationRunDetailApi(ApiView):
    read_permission = "reconciliation.view_reconciliationrun"

    class OutputSerializer(RunOutputSerializer):
        class CauseCountSerializer(serializers.Serializer):
            cause = serializers.ChoiceField(choices=Discrepancy.Cause.choices)
            count = serializers.IntegerField()

        discrepancies_by_cause = CauseCountSerializer(many=True, read_only=True)

        class Meta(RunOutputSerializer.Meta):
            fields = [*RunOutputSerializer.Meta.fields, "discrepancies_by_cause"]

    @extend_schema(
        responses={200: OutputSerializer, 404: OpenApiResponse(ErrorSerializer)},
        description="One run, with how many of its discrepancies each cause explains; the "
        "discrepancies themselves: /reconciliation-runs/{id}/discrepancies/.",
    )
    def get(self, request: Request, run_id: int) -> Response:
        _require_view(request, ReconciliationRun)
        run = get_object_or_404(ReconciliationRun.objects.select_related("channel"), pk=run_id)
        run.discrepancies_by_cause = list(  # type: ignore[attr-defined]
            run.discrepancies.values("cause").order_by("cause").annotate(count=Count("pk"))
        )
        return Response(self.OutputSerializer(run).data)


class DiscrepancyListApi(ListApi):
    read_permission = "reconciliation.view_discrepancy"

    class FilterSerializer(serializers.Serializer):
        channel = serializers.CharField(required=False, max_length=64, help_text="Channel slug.")
        sku = serializers.CharField(required=False, max_length=64, help_text="SKU code.")
        cause = serializers.ChoiceField(choices=Discrepancy.Cause.choices, required=False)
        repeated = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: DiscrepancyOutputSerializer(many=True), 400: BAD_REQUEST},
        description="Discrepancies, newest first.",
    )
    def get(self, request: Request, run_id: int | None = None) -> Response:
        _require_view(request, Discrepancy)
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        discrepancies = Discrepancy.objects.select_related("channel", "sku", "listing").order_by(
            "-detected_at", "-pk"
        )
        if run_id is not None:
            get_object_or_404(ReconciliationRun, pk=run_id)
            discrepancies = discrepancies.filter(run_id=run_id)
        if channel := filters.get("channel"):
            discrepancies = discrepancies.filter(channel__slug=channel)
        if sku := filters.get("sku"):
            discrepancies = discrepancies.filter(sku__code=sku)
        if cause := filters.get("cause"):
            discrepancies = discrepancies.filter(cause=cause)
        if filters.get("repeated") is not None:
            discrepancies = discrepancies.filter(repeated=filters["repeated"])
        return self.paginated_response(discrepancies, DiscrepancyOutputSerializer)


class RunDiscrepancyListApi(DiscrepancyListApi):
    """The discrepancies of one run (a separate view: its path has the run's id)."""

    @extend_schema(
        parameters=[DiscrepancyListApi.FilterSerializer],
        responses={
            200: DiscrepancyOutputSerializer(many=True),
            400: BAD_REQUEST,
            404: OpenApiResponse(ErrorSerializer),
        },
        description="The discrepancies one run found.",
    )
    def get(self, request: Request, run_id: int | None = None) -> Response:
        return super().get(request, run_id=run_id)
