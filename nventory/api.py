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
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.validators import RegexValidator
from django.db.models import QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nventory.api_permissions import ANY_CLIENT as ANY_CLIENT
from nventory.api_permissions import OperationPermission, required_permission
from nventory.pagination import BoundedLimitOffsetPagination

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

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The operation, its description ending with the permission it needs."""
        operation = super().get_operation(*args, **kwargs)
        needed = required_permission(self.view, self.method)
        if operation is not None and needed is not None:
            note = (
                "Open to any authenticated client."
                if needed == ANY_CLIENT
                else f"Needs the permission `{needed}`."
            )
            operation["description"] = "\n\n".join(
                part for part in (operation.get("description", ""), note) if part
            )
        return operation

    def get_tags(self) -> list[str]:
        # Tagged by resource (skus, orders, ...) rather than by the shared "v1" segment.
        segments = [segment for segment in self.path.split("/") if segment]
        for version, resource in itertools.pairwise(segments):
            if re.fullmatch(r"v\d+", version):
                return [resource]
        return super().get_tags()


def validated_input(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    also_allowed: Iterable[str] = (),
) -> dict[str, Any]:
    """The body (or query) validated by the serializer, as a dict; 400 (``ValidationError``)
    naming any field the serializer does not declare and ``also_allowed`` does not add (the
    paging parameters of a list), so that a misspelt option is never silently ignored."""
    if isinstance(data, Mapping):
        known = set(serializer_class().fields) | set(also_allowed)
        unknown = sorted(str(name) for name in set(data) - known)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ApiView(APIView):
    """Base of every API view: names schema components after the view, and states the
    permission each kind of request needs (``OperationPermission``)."""

    schema = NestedNameSchema()
    permission_classes = [OperationPermission]
    # Set by every view: the permission for GET (a model's "app.view_model") and for the
    # writes (a constant of nventory.permissions). None: refused.
    read_permission: str | None = None
    write_permission: str | None = None


class ListApi(ApiView):
    """Base of the list views: bounded limit/offset pages, which the schema documents too."""

    pagination_class = BoundedLimitOffsetPagination
    # Query parameters every list takes besides its own filters.
    paging_parameters = ("limit", "offset")

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


class SchemaApi(SpectacularAPIView):
    """The OpenAPI schema, generated by one thread of a process at a time.

    drf-spectacular loads its extensions into class attributes on the first generation,
    and two threads doing it at once fail with 500 (seen with gunicorn's threads: seven
    of eight simultaneous first requests). Generating is rare and cached by clients, so
    waiting for the lock costs nothing that matters.
    """

    _generating = threading.Lock()

    # SERVE_INCLUDE_SCHEMA is off: the schema does not describe its own endpoint.
    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with self._generating:
            return super().get(request, *args, **kwargs)
