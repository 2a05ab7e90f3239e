"""REST API v1 of the inventory: one APIView per operation (STYLE.md §4).

Each view parses its input with its nested ``InputSerializer``, calls one selector or
service, and shapes the answer with its ``OutputSerializer``. The bases and the error
shapes every app's API shares live in ``nventory.api``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from inventory import selectors, services
from inventory.models import MAX_QUANTITY, EventKind, EventSource, Location, Reservation, Sku
from nventory import permissions
from nventory.api import (
    BAD_REQUEST,
    NOT_FOUND,
    ApiView,
    ConflictSerializer,
    ListApi,
    code_validator,
    validated_input,
)

# Every key a client sends is stored under this prefix and the client's user id
# (``api:<user id>:<key>``), so an API client can never take a key that a service derives
# (``reservation:<id>:expired``) or a channel uses for a marketplace order, and two
# clients choosing the same key never meet: each gets its own object back, never the
# other's. The id ends at the first ":", so no key of one client spells another's.
API_KEY_PREFIX = "api:"
# Room is left for the prefix and the ``:out``/``:in`` suffixes of a transfer's events
# inside the 255 characters of InventoryEvent.idempotency_key.
IDEMPOTENCY_KEY_MAX_LENGTH = 200
MAX_RESERVATION_TTL_S = 7 * 24 * 3600


# -----------------------------------------------------------------------------------------
# Helpers and shared shapes
# -----------------------------------------------------------------------------------------


def client_key(request: Request, key: str) -> str:
    """The stored form of a key the client sent: scoped to that client."""
    return f"{API_KEY_PREFIX}{request.user.pk}:{key}"


def _reservation_owner_scope(request: Request) -> int | None:
    """Whose reservations the request may see and release: the client's own, or anyone's
    for an operator holding RELEASE_ANY_RESERVATION."""
    if request.user.has_perm(permissions.RELEASE_ANY_RESERVATION):
        return None
    client_id = request.user.pk
    assert client_id is not None  # OperationPermission let only signed-in clients here
    return int(client_id)


def _context(
    request: Request, data: dict[str, Any], *, idempotency_key: str | None = None
) -> services.EventContext:
    return services.EventContext(
        idempotency_key=client_key(request, idempotency_key or data["idempotency_key"]),
        source=EventSource.API,
        actor=request.user.get_username(),
        external_reference=data.get("external_reference", ""),
        reason=data.get("reason", ""),
    )


_CONFLICT = OpenApiResponse(
    ConflictSerializer,
    description="Refused: insufficient stock, a figure below zero, a reused key, or a "
    "reservation that already ended.",
)


@extend_schema_field(
    {
        "type": "integer",
        "minimum": -MAX_QUANTITY,
        "maximum": MAX_QUANTITY,
        "not": {"enum": [0]},
    }
)
class _NonZeroIntegerField(serializers.IntegerField):
    """A whole number other than 0, which the schema says too."""

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value == 0:
            raise serializers.ValidationError("An adjustment must change the quantity.")
        return value


class _StockChangeInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64, help_text="SKU code.")
    location = serializers.CharField(max_length=64, help_text="Location code.")
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        help_text="Repeating a request with the same key returns the first result and "
        "changes nothing. Keys are per client: the key is stored as 'api:<client id>:<key>', "
        "and another client's identical key is another request.",
    )
    external_reference = serializers.CharField(max_length=255, allow_blank=True, default="")
    reason = serializers.CharField(max_length=2000, allow_blank=True, default="")


# -----------------------------------------------------------------------------------------
# SKUs and locations
# -----------------------------------------------------------------------------------------


class SkuDetailApi(ApiView):
    read_permission = "inventory.view_sku"

    @extend_schema_serializer(component_name="Sku")
    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        category = serializers.CharField()
        is_active = serializers.BooleanField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, code: str) -> Response:
        sku = selectors.sku_by_code(code=code)
        return Response(self.OutputSerializer(sku).data)


class SkuListApi(ListApi):
    read_permission = "inventory.view_sku"

    class FilterSerializer(serializers.Serializer):
        search = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=100,
            help_text="Part of the code or name, any case.",
        )

    OutputSerializer = SkuDetailApi.OutputSerializer

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        skus = selectors.sku_list(search=filters.get("search", ""))
        return self.paginated_response(skus, self.OutputSerializer)


class SkuCreateApi(ApiView):
    write_permission = permissions.EDIT_CATALOG

    # Named like the output so that request and response share one name in the schema.
    @extend_schema_serializer(component_name="Sku")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(
            max_length=64,
            validators=[
                code_validator,
                UniqueValidator(Sku.objects.all(), "A SKU with this code already exists."),
            ],
        )
        name = serializers.CharField(max_length=255)
        category = serializers.CharField(max_length=100, allow_blank=True, default="")
        is_active = serializers.BooleanField(default=True)

    OutputSerializer = SkuDetailApi.OutputSerializer

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 400: BAD_REQUEST})
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        # A SKU is catalogue data, not stock: no service owns its creation yet.
        try:
            with transaction.atomic():
                sku = Sku.objects.create(**data)
        except IntegrityError:
            # Created by a concurrent request between validation and insert.
            raise serializers.ValidationError(
                {"code": ["A SKU with this code already exists."]}
            ) from None
        return Response(self.OutputSerializer(sku).data, status=status.HTTP_201_CREATED)


class SkuListCreateApi(SkuListApi, SkuCreateApi):
    """GET lists and POST creates at /skus/: one path, the two operations above."""


class SkuStockApi(ApiView):
    read_permission = "inventory.view_stocklevel"

    @extend_schema_serializer(component_name="SkuStock")
    class OutputSerializer(serializers.Serializer):
        class LocationSerializer(serializers.Serializer):
            location = serializers.CharField(source="location_code")
            name = serializers.CharField(source="location_name")
            on_hand = serializers.IntegerField()
            committed = serializers.IntegerField()
            reserved = serializers.IntegerField()
            available = serializers.IntegerField()

        class TotalsSerializer(serializers.Serializer):
            on_hand = serializers.IntegerField()
            committed = serializers.IntegerField()
            reserved = serializers.IntegerField()
            available = serializers.IntegerField()

        sku = serializers.CharField(source="sku_code")
        locations = LocationSerializer(many=True)
        totals = TotalsSerializer()

    @extend_schema(responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, code: str) -> Response:
        stock = selectors.sku_stock(sku=selectors.sku_by_code(code=code))
        return Response(self.OutputSerializer(stock).data)


class LocationDetailApi(ApiView):
    read_permission = "inventory.view_location"

    @extend_schema_serializer(component_name="Location")
    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        kind = serializers.ChoiceField(choices=Location.Kind.choices)
        is_active = serializers.BooleanField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, code: str) -> Response:
        location = selectors.location_by_code(code=code)
        return Response(self.OutputSerializer(location).data)


class LocationListApi(ListApi):
    read_permission = "inventory.view_location"

    OutputSerializer = LocationDetailApi.OutputSerializer

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return self.paginated_response(selectors.location_list(), self.OutputSerializer)


class LocationCreateApi(ApiView):
    write_permission = permissions.EDIT_LOCATIONS

    # Named like the output so that both "kind" enums resolve to one LocationKindEnum.
    @extend_schema_serializer(component_name="Location")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(
            max_length=64,
            validators=[
                code_validator,
                UniqueValidator(
                    Location.objects.all(), "A location with this code already exists."
                ),
            ],
        )
        name = serializers.CharField(max_length=255)
        kind = serializers.ChoiceField(
            choices=Location.Kind.choices, default=Location.Kind.WAREHOUSE
        )
        is_active = serializers.BooleanField(default=True)

    OutputSerializer = LocationDetailApi.OutputSerializer

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 400: BAD_REQUEST})
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        try:
            with transaction.atomic():
                location = Location.objects.create(**data)
        except IntegrityError:
            raise serializers.ValidationError(
                {"code": ["A location with this code already exists."]}
            ) from None
        return Response(self.OutputSerializer(location).data, status=status.HTTP_201_CREATED)


class LocationListCreateApi(LocationListApi, LocationCreateApi):
    """GET lists and POST creates at /locations/: one path, the two operations above."""


# -----------------------------------------------------------------------------------------
# The ledger
# -----------------------------------------------------------------------------------------


class EventListApi(ListApi):
    read_permission = "inventory.view_inventoryevent"

    class FilterSerializer(serializers.Serializer):
        sku = serializers.CharField(required=False, max_length=64, help_text="SKU code.")
        location = serializers.CharField(required=False, max_length=64, help_text="Location code.")
        kind = serializers.ChoiceField(choices=EventKind.choices, required=False)
        since = serializers.DateTimeField(
            required=False, help_text="Events created at or after this time (ISO 8601)."
        )
        until = serializers.DateTimeField(
            required=False, help_text="Events created before this time (ISO 8601)."
        )
        external_reference = serializers.CharField(required=False, max_length=255)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            since, until = attrs.get("since"), attrs.get("until")
            if since is not None and until is not None and until < since:
                raise serializers.ValidationError({"until": ["Must not be before since."]})
            return attrs

    @extend_schema_serializer(component_name="InventoryEvent")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=EventKind.choices)
        sku = serializers.CharField(source="sku.code")
        location = serializers.CharField(source="location.code")
        delta_on_hand = serializers.IntegerField()
        delta_committed = serializers.IntegerField()
        delta_reserved = serializers.IntegerField()
        on_hand_after = serializers.IntegerField()
        committed_after = serializers.IntegerField()
        reserved_after = serializers.IntegerField()
        available_after = serializers.IntegerField()
        shortfall = serializers.IntegerField()
        # DRF's metaclass moves declared fields off the class, so this does not shadow
        # Field.source at run time; mypy only sees the class body.
        source = serializers.ChoiceField(choices=EventSource.choices)  # type: ignore[assignment]
        actor = serializers.CharField()
        external_reference = serializers.CharField()
        reason = serializers.CharField()
        reservation = serializers.IntegerField(source="reservation_id", allow_null=True)
        idempotency_key = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        sku_code, location_code = filters.get("sku"), filters.get("location")
        events = selectors.ledger_events(
            sku_id=selectors.sku_by_code(code=sku_code).pk if sku_code else None,
            location_id=(
                selectors.location_by_code(code=location_code).pk if location_code else None
            ),
            kind=filters.get("kind"),
            since=filters.get("since"),
            until=filters.get("until"),
            external_reference=filters.get("external_reference"),
        )
        return self.paginated_response(events, self.OutputSerializer)


_EVENT = EventListApi.OutputSerializer


def _stock_event_created(
    request: Request, data: dict[str, Any], service: Callable[..., Any], *fields: str
) -> Response:
    """Run a one-row stock service on the request's SKU and location; answer 201 with the event."""
    event = service(
        sku_id=selectors.sku_by_code(code=data["sku"]).pk,
        location_id=selectors.location_by_code(code=data["location"]).pk,
        context=_context(request, data),
        **{field: data[field] for field in fields},
    )
    return Response(_EVENT(event).data, status=status.HTTP_201_CREATED)


_STOCK_CHANGE_RESPONSES: dict[int, Any] = {
    201: _EVENT,
    400: BAD_REQUEST,
    404: NOT_FOUND,
    409: _CONFLICT,
}


# -----------------------------------------------------------------------------------------
# Goods in, adjustments and transfers
# -----------------------------------------------------------------------------------------


class ReceiptCreateApi(ApiView):
    write_permission = permissions.RECEIVE_ADJUST_TRANSFER

    class InputSerializer(_StockChangeInput):
        pass

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.receive_stock, "quantity")


class AdjustmentCreateApi(ApiView):
    write_permission = permissions.RECEIVE_ADJUST_TRANSFER

    class InputSerializer(serializers.Serializer):
        sku = serializers.CharField(max_length=64, help_text="SKU code.")
        location = serializers.CharField(max_length=64, help_text="Location code.")
        delta = _NonZeroIntegerField(
            min_value=-MAX_QUANTITY,
            max_value=MAX_QUANTITY,
            help_text="Units added to (positive) or removed from (negative) on hand; not 0.",
        )
        reason = serializers.CharField(max_length=2000)
        idempotency_key = serializers.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
        external_reference = serializers.CharField(max_length=255, allow_blank=True, default="")

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.adjust_stock, "delta")


class TransferCreateApi(ApiView):
    write_permission = permissions.RECEIVE_ADJUST_TRANSFER

    class InputSerializer(serializers.Serializer):
        sku = serializers.CharField(max_length=64, help_text="SKU code.")
        from_location = serializers.CharField(max_length=64, help_text="Location code.")
        to_location = serializers.CharField(max_length=64, help_text="Location code.")
        quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)
        idempotency_key = serializers.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
        external_reference = serializers.CharField(max_length=255, allow_blank=True, default="")
        reason = serializers.CharField(max_length=2000, allow_blank=True, default="")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["from_location"] == attrs["to_location"]:
                raise serializers.ValidationError(
                    {"to_location": ["Must differ from from_location."]}
                )
            return attrs

    class OutputSerializer(serializers.Serializer):
        transfer_out = _EVENT()
        transfer_in = _EVENT()

    @extend_schema(
        request=InputSerializer,
        responses={**_STOCK_CHANGE_RESPONSES, 201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        out_event, in_event = services.transfer_stock(
            sku_id=selectors.sku_by_code(code=data["sku"]).pk,
            from_location_id=selectors.location_by_code(code=data["from_location"]).pk,
            to_location_id=selectors.location_by_code(code=data["to_location"]).pk,
            quantity=data["quantity"],
            context=_context(request, data),
        )
        body = self.OutputSerializer({"transfer_out": out_event, "transfer_in": in_event}).data
        return Response(body, status=status.HTTP_201_CREATED)


# -----------------------------------------------------------------------------------------
# Reservations
# -----------------------------------------------------------------------------------------


class ReservationDetailApi(ApiView):
    read_permission = "inventory.view_reservation"

    @extend_schema_serializer(component_name="Reservation")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        sku = serializers.CharField(source="sku.code")
        location = serializers.CharField(source="location.code")
        quantity = serializers.IntegerField()
        status = serializers.ChoiceField(choices=Reservation.Status.choices)
        expires_at = serializers.DateTimeField()
        external_reference = serializers.CharField()
        idempotency_key = serializers.CharField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, reservation_id: int) -> Response:
        reservation = selectors.reservation_by_id(
            reservation_id=reservation_id, owner_id=_reservation_owner_scope(request)
        )
        return Response(self.OutputSerializer(reservation).data)


class ReservationCreateApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_StockChangeInput):
        ttl_s = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=MAX_RESERVATION_TTL_S,
            help_text="Seconds until the hold expires; the server default if absent.",
        )

    OutputSerializer = ReservationDetailApi.OutputSerializer

    @extend_schema(
        request=InputSerializer,
        responses={**_STOCK_CHANGE_RESPONSES, 201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        reservation = services.reserve_stock(
            sku_id=selectors.sku_by_code(code=data["sku"]).pk,
            location_id=selectors.location_by_code(code=data["location"]).pk,
            quantity=data["quantity"],
            ttl_s=data.get("ttl_s"),
            context=_context(request, data),
            owner_id=request.user.pk,
        )
        return Response(self.OutputSerializer(reservation).data, status=status.HTTP_201_CREATED)


class _ReservationEndInput(serializers.Serializer):
    idempotency_key = serializers.CharField(
        required=False,
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        help_text="Optional: ending a reservation twice changes nothing either way.",
    )


class ReservationConfirmApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_ReservationEndInput):
        pass

    OutputSerializer = ReservationDetailApi.OutputSerializer

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: _CONFLICT},
    )
    def post(self, request: Request, reservation_id: int) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        # Confirming is a sale: only the client that holds the units makes it.
        reservation = services.confirm_reservation(
            reservation_id=reservation_id,
            owner_id=request.user.pk,
            context=_context(
                request,
                data,
                idempotency_key=data.get("idempotency_key") or f"confirm:{reservation_id}",
            ),
        )
        return Response(self.OutputSerializer(reservation).data)


class ReservationReleaseApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_ReservationEndInput):
        pass

    OutputSerializer = ReservationDetailApi.OutputSerializer

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: _CONFLICT},
    )
    def post(self, request: Request, reservation_id: int) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        reservation = services.release_reservation(
            reservation_id=reservation_id,
            owner_id=_reservation_owner_scope(request),
            context=_context(
                request,
                data,
                idempotency_key=data.get("idempotency_key") or f"release:{reservation_id}",
            ),
        )
        return Response(self.OutputSerializer(reservation).data)


# -----------------------------------------------------------------------------------------
# Orders
# -----------------------------------------------------------------------------------------


class OrderCommitApi(ApiView):
    """The checkout path: refused with 409 when the units are not available."""

    write_permission = permissions.SELL

    class InputSerializer(_StockChangeInput):
        pass

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.commit_order, "quantity")


class OrderCancelApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_StockChangeInput):
        pass

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.cancel_order, "quantity")


class OrderShipApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_StockChangeInput):
        pass

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.ship_order, "quantity")


class OrderReturnApi(ApiView):
    write_permission = permissions.SELL

    class InputSerializer(_StockChangeInput):
        restock = serializers.BooleanField(
            help_text="True puts the units back on hand; false records them as damaged."
        )

    OutputSerializer = _EVENT

    @extend_schema(request=InputSerializer, responses=_STOCK_CHANGE_RESPONSES)
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        return _stock_event_created(request, data, services.return_order, "quantity", "restock")
