"""The entry point of API v1: where each resource lives, for people and clients exploring it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from nventory.api import ANY_CLIENT, ApiView

_RESOURCES = {
    "skus": "inventory_api:sku-list",
    "locations": "inventory_api:location-list",
    "events": "inventory_api:event-list",
    "receipts": "inventory_api:receipt-create",
    "adjustments": "inventory_api:adjustment-create",
    "transfers": "inventory_api:transfer-create",
    "reservations": "inventory_api:reservation-create",
    "channels": "channels_api:channel-list",
    "dead_letters": "channels_api:dead-letter-list",
    "oversell_incidents": "channels_api:oversell-incident-list",
    "unmapped_lines": "channels_api:unmapped-line-list",
    "webhook_receipts": "channels_api:webhook-receipt-list",
    "listings": "channels_api:listing-list",
    "buffer_rules": "channels_api:buffer-rule-list",
    "alerts": "channels_api:alert-list",
    "reconciliation_runs": "reconciliation_api:run-list",
    "discrepancies": "reconciliation_api:discrepancy-list",
    "kpis": "kpi-list",
}


class ApiRootApi(ApiView):
    # Only names where things are: any client with a valid token may read it.
    read_permission = ANY_CLIENT

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        links = {name: reverse(route, request=request) for name, route in _RESOURCES.items()}
        links["schema"] = reverse("api-schema", request=request)
        links["docs"] = reverse("api-docs", request=request)
        return Response(links)
