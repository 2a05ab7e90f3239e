"""Application errors and the DRF exception handler that maps them to HTTP answers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A request the domain refuses; ``status`` is the HTTP answer it maps to."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status)
    if isinstance(exc, ObjectDoesNotExist | Http404):
        exc = drf_exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        return response
    if isinstance(exc, drf_exceptions.ValidationError):
        # Field errors stay {field: [message, ...]} (a field may itself be called "code");
        # a bare list of messages becomes one object like every other answer.
        if not isinstance(response.data, dict):
            response.data = {"non_field_errors": response.data}
        return response
    # Every other refusal (401, 403, 404, 405, 406, 413, 415, 429) says what it is in
    # words and by a stable code, as the schema documents (nventory.api.ErrorSerializer).
    response.data = {"detail": str(exc.detail), "code": _code_of(exc)}
    return response


def _code_of(exc: drf_exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else str(exc.default_code)


# Paths whose callers are programs: they get JSON errors, never Django's HTML pages.
_JSON_PATHS = ("/api/", "/webhooks/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches: JSON under the API and webhooks, HTML elsewhere."""
    if request.path.startswith(_JSON_PATHS):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 that no view answered (a body over Django's own limit, a malformed request):
    JSON under the API and webhooks, 413 for a body that is too large."""
    if request.path.startswith(_JSON_PATHS):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(
                {"detail": "The request body is over the size limit.", "code": "body_too_large"},
                status=413,
            )
        return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403 that no view answered (``PermissionDenied`` raised outside DRF): JSON
    under the API and webhooks, HTML elsewhere."""
    if request.path.startswith(_JSON_PATHS):
        return JsonResponse(
            {"detail": "You do not have permission to do this.", "code": "permission_denied"},
            status=403,
        )
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: JSON under the API and webhooks (so the platform retries), HTML elsewhere."""
    if request.path.startswith(_JSON_PATHS):
        return JsonResponse(
            {"detail": "The server failed to answer; try again.", "code": "server_error"},
            status=500,
        )
    return defaults.server_error(request)
