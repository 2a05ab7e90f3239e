"""The scorecard for machines: ``GET /api/v1/kpis/`` (routes at the bottom, included from
``nventory/urls.py``). Reading it needs the ``channels.view_channel`` permission."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from channels import kpis
from nventory.api import BAD_REQUEST, ApiView, validated_input
from reconciliation import scorecard

READ_CHANNELS = "channels.view_channel"


_FROM_HISTOGRAMS = (
    "Read from latency histograms (eight buckets per doubling): within 4.4 % of the exact "
    "percentile. Null: no push in the window."
)


class _PercentilesSerializer(serializers.Serializer):
    samples = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True, help_text=_FROM_HISTOGRAMS)
    p95_ms = serializers.FloatField(allow_null=True, help_text=_FROM_HISTOGRAMS)
    p99_ms = serializers.FloatField(allow_null=True, help_text=_FROM_HISTOGRAMS)


class _KpiSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Null: nothing to measure.")
    colour = serializers.ChoiceField(choices=[status.value for status in kpis.Status])
    target = serializers.CharField()


class KpiListApi(ApiView):
    read_permission = READ_CHANNELS

    class InputSerializer(serializers.Serializer):
        window_h = serializers.IntegerField(
            min_value=1,
            max_value=round(kpis.LONGEST_KPI_WINDOW.total_seconds() / 3600),
            default=24,
            help_text="Hours back from now.",
        )

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(serializers.Serializer):
            channel = serializers.CharField(allow_null=True, help_text="Slug; null: overall.")
            colour = serializers.ChoiceField(
                choices=[status.value for status in kpis.Status],
                help_text="The worst colour of the row's KPIs.",
            )
            latency_to_acknowledged = _PercentilesSerializer()
            latency_to_applied = _PercentilesSerializer()
            sync_latency_p95 = _KpiSerializer()
            sync_accuracy = _KpiSerializer()
            oversell_rate = _KpiSerializer()
            sync_uptime = _KpiSerializer()
            error_rate = _KpiSerializer()
            webhook_health = _KpiSerializer()
            buffer_held_back_share = _KpiSerializer()
            orders = serializers.IntegerField()
            oversold_orders = serializers.IntegerField()
            pushes_sent = serializers.IntegerField()
            push_errors = serializers.IntegerField()
            webhooks_received = serializers.IntegerField()
            units_held_back = serializers.IntegerField()
            units_held_back_at = serializers.DateTimeField(
                allow_null=True,
                help_text="When the units held back were worked out (a snapshot taken every "
                "5 minutes); null: not yet.",
            )
            units_sold = serializers.IntegerField()

        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        overall = RowSerializer()
        channels = RowSerializer(many=True)

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: OutputSerializer, 400: BAD_REQUEST},
        description=(
            "The sync-health scorecard per channel and overall, each KPI with its value, "
            "colour and target (as the console's scorecard)."
        ),
    )
    def get(self, request: Request) -> Response:
        window_h = validated_input(self.InputSerializer, request.query_params)["window_h"]
        card = scorecard.scorecard(window=dt.timedelta(hours=window_h))
        return Response(
            self.OutputSerializer(
                {
                    "start": card.start,
                    "end": card.end,
                    "overall": kpi_row(card.overall),
                    "channels": [kpi_row(row) for row in card.rows],
                }
            ).data
        )


def kpi_row(row: scorecard.ScorecardRow) -> dict[str, Any]:
    """One scorecard row as the API and the metrics endpoint name its figures."""
    figures = row.figures
    latency = figures.latency
    return {
        "channel": row.channel.slug if row.channel is not None else None,
        "colour": row.worst_status,
        "latency_to_acknowledged": latency.to_acknowledged,
        "latency_to_applied": latency.to_applied,
        "sync_latency_p95": _kpi(latency.to_applied.p95_ms, latency.status, "< 30000 ms"),
        "sync_accuracy": _kpi(row.accuracy.share, row.accuracy.status, ">= 0.995"),
        "oversell_rate": _kpi(figures.oversell.rate, figures.oversell.status, "0"),
        "sync_uptime": _kpi(figures.uptime.share, figures.uptime.status, ">= 0.999"),
        "error_rate": _kpi(figures.errors.rate, figures.errors.status, "< 0.001"),
        "webhook_health": _kpi(
            figures.webhooks.share_healthy, figures.webhooks.status, ">= 0.999"
        ),
        "buffer_held_back_share": _kpi(
            figures.buffer.held_back_share, figures.buffer.status, "informational"
        ),
        "orders": figures.oversell.orders,
        "oversold_orders": figures.oversell.oversold_orders,
        "pushes_sent": figures.errors.sent,
        "push_errors": figures.errors.errors,
        "webhooks_received": figures.webhooks.received,
        "units_held_back": figures.buffer.held_back_units,
        "units_held_back_at": figures.buffer.taken_at,
        "units_sold": figures.buffer.sold_units,
    }


def _kpi(value: float | None, status: kpis.Status, target: str) -> dict[str, Any]:
    return {"value": value, "colour": status, "target": target}


urlpatterns = [path("kpis/", KpiListApi.as_view(), name="kpi-list")]
