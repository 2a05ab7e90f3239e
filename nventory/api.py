"""Bases and shared shapes of every app's REST API v1 (STYLE.md §4).

One ``APIView`` per operation, each with nested ``InputSerializer`` / ``OutputSerializer``;
the apps' ``api/apis.py`` build on what is here and import it from here only, never from
each other. Domain refusals are ``nventory.errors.ApplicationError`` subclasses, mapped to
400/404/409 by the exception handler in settings; the serializers below describe those
answers in the schema.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from django.core.validators import RegexValidator
from django.db.models import QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

# SKU and location codes are path segments in this API, so they may not contain "/".
code_validator = RegexValidator(r"^[^/]+\Z", "A code may not contain '/'.")


class NestedNameSchema(AutoSchema):
    """Names a nested serializer after its view, so every view's InputSerializer is its own
    schema component (``ReceiptCreateApi.InputSerializer`` -> ``ReceiptCreateRequest``)."""

    def get_serializer_name(self, serializer: serializers.BaseSerializer, direction: str) -> str:
        words = []
        for part in type(serializer).__qualname__.split("."):
            word = part.removesuffix("Serializer").removesuffix("Api")
            if word not in {"Input", "Output"}:
                words.append(word)
        return "".join(words)

    def get_tags(self) -> list[str]:
        # Tagged by resource (skus, orders, ...) rather than by the shared "v1" segment.
        segments = [segment for segment in self.path.split("/") if segment]
        for version, resource in itertools.pairwise(segments):
            if re.fullmatch(r"v\d+", version):
                return [resource]
        return super().get_tags()


class ApiView(APIView):
    """Base of every API view: names schema components after the view."""

    schema = NestedNameSchema()


class ListApi(ApiView):
    """Base of the list views: LimitOffsetPagination, which the schema documents too."""

    pagination_class = LimitOffsetPagination

    def paginated_response(
        self, queryset: QuerySet[Any], serializer_class: type[serializers.Serializer]
    ) -> Response:
        """One page of ``queryset`` in the ``{count, next, previous, results}`` envelope."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """The body of a 404 or 409 answer (schema only)."""

    detail = serializers.CharField()
    code = serializers.CharField()


@extend_schema_serializer(component_name="Conflict")
class ConflictSerializer(ErrorSerializer):
    """The body of a 409: ``available``/``requested`` come with ``insufficient_stock``,
    ``status`` with a reservation (or a dead letter) that already ended."""

    sku_id = serializers.IntegerField(required=False)
    location_id = serializers.IntegerField(required=False)
    available = serializers.IntegerField(required=False)
    requested = serializers.IntegerField(required=False)
    status = serializers.CharField(required=False)


BAD_REQUEST = OpenApiResponse(description="Field errors: {field: [message, ...]}.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Unknown SKU, location or id.")
