"""REST API v1 of bundles: create, read and replace bills of materials.

Same layout as every app's API (bases in ``nventory.api``): one view per operation,
nested serializers, one selector or service call each. A BOM the service refuses (a
cycle, a component listed twice) is a 400 on ``lines``, like any other field error.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator

from bundles import selectors, services
from inventory.models import Sku
from nventory import permissions
from nventory.api import (
    BAD_REQUEST,
    NOT_FOUND,
    ApiView,
    ListApi,
    code_validator,
    validated_input,
)


def _bom(lines: list[dict[str, Any]]) -> list[tuple[Sku, int]]:
    return [(line["component"], line["quantity"]) for line in lines]


class _LineInput(serializers.Serializer):
    component = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Sku.objects.all(),
        help_text="SKU code of the component; it may itself be a bundle.",
        error_messages={"does_not_exist": "SKU {value!r} does not exist."},
    )
    quantity = serializers.IntegerField(
        min_value=1,
        max_value=services.MAX_LINE_QUANTITY,
        help_text="Units of the component in one bundle.",
    )


class BundleDetailApi(ApiView):
    read_permission = "bundles.view_bundle"

    @extend_schema_serializer(component_name="Bundle")
    class OutputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            component = serializers.CharField(source="component.code")
            quantity = serializers.IntegerField()

        code = serializers.CharField()
        name = serializers.CharField()
        category = serializers.CharField()
        is_active = serializers.BooleanField()
        lines = LineSerializer(source="bom_lines", many=True)
        available = serializers.IntegerField(
            help_text="Bundles the components' stock makes, over all locations: "
            "min(floor(component available / units per bundle))."
        )

    @extend_schema(responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, code: str) -> Response:
        bundle = selectors.bundle_by_code(code=code)
        return Response(self.OutputSerializer(bundle).data)


class BundleListApi(ListApi):
    read_permission = "bundles.view_bundle"

    class FilterSerializer(serializers.Serializer):
        search = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=100,
            help_text="Part of the code or name, any case.",
        )

    OutputSerializer = BundleDetailApi.OutputSerializer

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        filters = validated_input(
            self.FilterSerializer, request.query_params, also_allowed=self.paging_parameters
        )
        bundles = selectors.bundle_list(search=filters.get("search", ""))
        return self.paginated_response(bundles, self.OutputSerializer)


class BundleCreateApi(ApiView):
    write_permission = permissions.EDIT_BUNDLES

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
        lines: serializers.ListSerializer = serializers.ListSerializer(
            child=_LineInput(), allow_empty=False, max_length=services.MAX_BOM_LINES
        )

    OutputSerializer = BundleDetailApi.OutputSerializer

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 400: BAD_REQUEST})
    def post(self, request: Request) -> Response:
        data = validated_input(self.InputSerializer, request.data)
        try:
            bundle = services.create_bundle(
                code=data["code"],
                name=data["name"],
                category=data["category"],
                lines=_bom(data["lines"]),
            )
        except services.BomError as exc:
            raise serializers.ValidationError({"lines": [exc.message]}) from None
        except IntegrityError:
            # Created by a concurrent request between validation and insert.
            raise serializers.ValidationError(
                {"code": ["A SKU with this code already exists."]}
            ) from None
        return Response(
            self.OutputSerializer(selectors.bundle_by_code(code=bundle.code)).data,
            status=status.HTTP_201_CREATED,
        )


class BundleUpdateApi(ApiView):
    write_permission = permissions.EDIT_BUNDLES

    class InputSerializer(serializers.Serializer):
        lines: serializers.ListSerializer = serializers.ListSerializer(
            child=_LineInput(), allow_empty=False, max_length=services.MAX_BOM_LINES
        )

    OutputSerializer = BundleDetailApi.OutputSerializer

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
        description="Replaces the bundle's BOM lines.",
    )
    def put(self, request: Request, code: str) -> Response:
        bundle = selectors.bundle_by_code(code=code)
        data = validated_input(self.InputSerializer, request.data)
        try:
            services.set_bom(bundle=bundle, lines=_bom(data["lines"]))
        except services.BomError as exc:
            raise serializers.ValidationError({"lines": [exc.message]}) from None
        return Response(self.OutputSerializer(selectors.bundle_by_code(code=code)).data)


class BundleListCreateApi(BundleListApi, BundleCreateApi):
    """GET lists and POST creates at /bundles/: one path, the two operations above."""


class BundleDetailUpdateApi(BundleDetailApi, BundleUpdateApi):
    """GET reads and PUT replaces the BOM at /bundles/<code>/."""
