"""Application errors and the DRF exception handler that maps them to HTTP answers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
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
    if isinstance(exc, ObjectDoesNotExist):
        exc = drf_exceptions.NotFound(str(exc))
    elif isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    return exception_handler(exc, context)


# Paths whose callers are programs: they get JSON errors, never Django's HTML pages.
_JSON_PATHS = ("/api/", "/webhooks/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches: JSON under the API and webhooks, HTML elsewhere."""
    if request.path.startswith(_JSON_PATHS):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: JSON under the API and webhooks (so the platform retries), HTML elsewhere."""
    if request.path.startswith(_JSON_PATHS):
        return JsonResponse(
            {"detail": "The server failed to answer; try again.", "code": "server_error"},
            status=500,
        )
    return defaults.server_error(request)
