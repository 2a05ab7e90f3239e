"""Middleware of the project's own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from nventory.parsers import RequestBodyTooLarge, max_body_bytes

API_PREFIX = "/api/"


class ApiBodyLimitMiddleware:
    """Refuses an API request whose declared body is over ``API_MAX_BODY_BYTES`` with a
    413 in JSON, before anything reads it.

    Django reads no more than ``Content-Length`` bytes, so a body that declares less is
    cut there, and one that declares nothing is read as empty; the JSON parser caps what
    it reads again. Webhooks have their own cap (``WEBHOOK_MAX_BODY_BYTES``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX) and _declared_length(request) > max_body_bytes():
            refusal = RequestBodyTooLarge()
            return JsonResponse(
                {"detail": str(refusal.detail), "code": refusal.default_code},
                status=refusal.status_code,
            )
        return self.get_response(request)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
