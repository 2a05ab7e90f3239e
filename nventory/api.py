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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.validators import RegexValidator
from django.db.models import Model, QuerySet
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.urls import register_converter
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from nventory.api_permissions import ANY_CLIENT as ANY_CLIENT
from nventory.api_permissions import OperationPermission, required_permission
from nventory.pagination import BoundedLimitOffsetPagination

# SKU and location codes are path segments in this API, so they may not contain "/".
code_validator = RegexValidator(r"^[^/]+\Z", "A code may not contain '/'.")


class CodeConverter:
    """``<code:name>`` in a route: a SKU, bundle or location code. A segment holding a NUL
    byte matches no route (a 404 in JSON): no such code can exist, and PostgreSQL refuses
    NUL in text before it could say so."""

    regex = "[^/\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CodeConverter, "code")


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


def _blank_query_parameters(fields: Mapping[str, Any], query: QueryDict) -> dict[str, Any]:
    # DRF reads "?until=" as no value at all; a parameter given must say something, unless
    # its field takes a blank (a search for anything).
    return {
        name: ["This parameter may not be blank."]
        for name, value in query.items()
        if value == ""
        and name in fields
        and not (isinstance(fields[name], serializers.CharField) and fields[name].allow_blank)
    }


def _json_type_errors(fields: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Errors for values of the wrong JSON type: DRF would take "5" or 5.0 for a number,
    1 or "yes" for a boolean and 5 for a string, so a client's mistake could pass, and the
    schema (which names one type) would not describe what the API takes."""
    errors: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in body or field.read_only:
            continue
        value = body[name]
        if value is None:
            continue  # the field says whether it allows null
        if isinstance(field, serializers.ListSerializer):
            if not isinstance(value, list):
                errors[name] = ["Expected a list."]
                continue
            child = field.child
            assert isinstance(child, serializers.Serializer)
            items = {
                str(index): (
                    _json_type_errors(child.fields, item)
                    if isinstance(item, Mapping)
                    else {"non_field_errors": ["Expected an object."]}
                )
                for index, item in enumerate(value)
            }
            if any(items.values()):
                errors[name] = {index: item for index, item in items.items() if item}
            continue
        expected = _json_type_of(field)
        if expected is not None and not _is_json_type(value, expected):
            errors[name] = [f"Expected {expected}."]
    return errors


def _json_type_of(field: serializers.Field) -> str | None:
    if isinstance(field, serializers.BooleanField):
        return "true or false"
    if isinstance(field, serializers.IntegerField):
        return "a whole number"
    if isinstance(
        field,
        serializers.CharField
        | serializers.ChoiceField
        | serializers.DateTimeField
        | serializers.RelatedField,
    ):
        return "a string"
    return None


def _is_json_type(value: object, expected: str) -> bool:
    if expected == "true or false":
        return isinstance(value, bool)
    if expected == "a whole number":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def validated_input(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    also_allowed: Iterable[str] = (),
) -> dict[str, Any]:
    """The body (or query) validated by the serializer, as a dict; 400 (``ValidationError``)
    naming any field the serializer does not declare and ``also_allowed`` does not add (the
    paging parameters of a list), so that a misspelt option is never silently ignored; any
    body value of another JSON type than its field's; any query parameter given blank."""
    if isinstance(data, Mapping):
        fields = serializer_class().fields
        known = set(fields) | set(also_allowed)
        unknown = sorted(str(name) for name in set(data) - known)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        problems = (
            _blank_query_parameters(fields, data)
            if isinstance(data, QueryDict)
            else _json_type_errors(fields, data)
        )
        if problems:
            raise serializers.ValidationError(problems)
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


class ActionApi(ApiView):
    """Base of an operation that is one service call: a POST that validates its body, answers
    404 when the object its URL names is missing, calls ``perform`` (the service) and answers
    what it returns through ``OutputSerializer``.

    A subclass keeps its own permission (``write_permission``) and sets ``InputSerializer``
    (None: the operation takes no body), ``target`` (the model whose id is the URL's one
    parameter; None: the URL names none), ``OutputSerializer``, and its schema's
    ``responses``, ``description`` and, where the path's own would not do, ``operation_id``.
    ``perform`` reads the URL's parameters from ``self.kwargs`` and the caller from
    ``self.request.user``; the service checks the permission and records who acted.
    """

    InputSerializer: type[serializers.Serializer] | None = None
    OutputSerializer: type[serializers.BaseSerializer[Any]]
    target: type[Model] | None = None
    responses: dict[int, Any]
    description: str
    operation_id: str | None = None
    # Each subclass's own, made by __init_subclass__ to carry its schema.
    post: Callable[..., Response]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The schema is stated by the class's attributes, after the nested InputSerializer
        # it names exists (a decorator's arguments run before the class body). It goes on
        # the class's own POST: on the class, an operation_id would name every method.
        super().__init_subclass__(**kwargs)

        def post(self: ActionApi, request: Request, **url_parameters: Any) -> Response:
            return self.act(request, **url_parameters)

        cls.post = extend_schema(
            operation_id=cls.operation_id,
            request=cls.InputSerializer,
            responses=cls.responses,
            description=cls.description,
        )(post)

    def act(self, request: Request, **url_parameters: Any) -> Response:
        data = validated_input(self.InputSerializer, request.data) if self.InputSerializer else {}
        if self.target is not None:
            (target_id,) = url_parameters.values()
            get_object_or_404(self.target._default_manager.only("pk"), pk=target_id)
        return Response(self.OutputSerializer(self.perform(data)).data)

    def perform(self, data: dict[str, Any]) -> Any:
        """Call the operation's service with the validated body; what it returns is answered."""
        raise NotImplementedError


class ListApi(ApiView):
    """Base of the list views: bounded limit/offset pages, which the schema documents too."""

    pagination_class = BoundedLimitOffsetPagination
    # Query parameters every list takes besides its own filters.
    paging_parameters = ("limit", "offset")

    def paginated_response(
        self, queryset: QuerySet[Any], serializer_class: type[serializers.Serializer]
    ) -> Response:
        """One page of ``queryset`` in the ``{count, next, previous, results}`` envelope."""
        _refuse_unknown_query_parameters(self)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _refuse_unknown_query_parameters(view: ListApi) -> None:
    # A list's filters are its FilterSerializer's fields (validated by the view itself);
    # a misspelt one is a 400 naming it, never a silently unfiltered page.
    filters = getattr(view, "FilterSerializer", None)
    known = {*view.paging_parameters, api_settings.URL_FORMAT_OVERRIDE}
    if filters is not None:
        known |= set(filters().fields)
    unknown = sorted(set(view.request.query_params) - known)
    if unknown:
        raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """The body of every error but a 400's field errors: what went wrong in words, and a
    stable code to act on (``not_found``, ``not_authenticated``, ``permission_denied``,
    ``method_not_allowed``, ``body_too_large``, ``unsupported_media_type``, ``throttled``,
    ``parse_error``, ``insufficient_stock``, ...). Schema only."""

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


BAD_REQUEST = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Field errors: {field: [message, ...]}; a body that is not JSON: {detail, code}.",
)
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Unknown SKU, location or id.")
FORBIDDEN = OpenApiResponse(
    ErrorSerializer, description="The user lacks the permission this operation needs."
)


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


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail", "code"],
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
# The answers any operation may give besides its own, each with the Error body (400: the
# field errors or {detail, code}). 413 and 415 only where there is a body to refuse.
_ANSWERS_OF_EVERY_OPERATION = {
    "400": ("Invalid query parameters or body.", {"type": "object", "additionalProperties": {}}),
    "401": ("No credentials, or credentials that are not valid.", _ERROR_REF),
    "403": ("The credentials do not allow this operation.", _ERROR_REF),
    "429": ("Too many requests; Retry-After says when to try again.", _ERROR_REF),
}
_ANSWERS_OF_A_BODY = {
    "413": ("The body is over API_MAX_BODY_BYTES.", _ERROR_REF),
    "415": ("The body is not JSON (Content-Type application/json).", _ERROR_REF),
}


def _close_request_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    # validated_input refuses a field the body's serializer does not declare: say so.
    for media in operation.get("requestBody", {}).get("content", {}).values():
        reference = media.get("schema", {}).get("$ref", "")
        component = schemas.get(reference.rsplit("/", 1)[-1])
        if component is not None and component.get("type") == "object":
            component["additionalProperties"] = False
            _require_a_visible_character(component)


# DRF's CharField trims whitespace (Python's str.strip) before it checks for blank, so a
# string of spaces is refused as blank where the schema's minLength alone would let it
# through. The pattern asks for one character Python does not strip, spelt out: a schema
# regex's \s is ECMAScript's, which leaves out \x1c-\x1f and \x85 and adds \ufeff.
VISIBLE_CHARACTER_PATTERN = (
    "[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


def _require_a_visible_character(component: dict[str, Any]) -> None:
    for field in component.get("properties", {}).values():
        if (
            field.get("type") == "string"
            and field.get("minLength", 0) >= 1
            and not {"pattern", "enum", "format"} & field.keys()
        ):
            field["pattern"] = VISIBLE_CHARACTER_PATTERN


def document_error_answers(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every API operation documents the errors any
    request may get (authentication, permission, throttling, a refused body), with the
    body each has, so that a client or a schema checker meets no undocumented answer; a
    request body takes no property its schema does not name."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Error", _ERROR_SCHEMA
    )
    schemas = result["components"]["schemas"]
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            _close_request_body(operation, schemas)
            answers = dict(_ANSWERS_OF_EVERY_OPERATION)
            if "requestBody" in operation:
                answers.update(_ANSWERS_OF_A_BODY)
            responses = operation.setdefault("responses", {})
            for status, (description, schema) in answers.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": schema}},
                    },
                )
    return result
