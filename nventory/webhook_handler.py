"""The WSGI entry point: webhook deliveries take a lean path, everything else Django's.

A delivery is a machine's POST verified by its own signature: the page middleware (sessions,
authentication, CSRF, messages, the console's htmx and edit history, the login lock-out)
has nothing to do for it, yet costs every one of hundreds of deliveries a second. Under
``/webhooks/`` the request goes through Django's handler with ``SecurityMiddleware`` and
the check of the ``Host`` header only: the same URL resolution, request signals (database
connections opened and closed as on every request) and error handling, without the rest,
and without the connection's health check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.security import SecurityMiddleware

WEBHOOK_PATH_PREFIX = "/webhooks/"


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with ``SecurityMiddleware`` and the ``Host`` check only."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        # BaseHandler._get_response: URL resolution, the view, its exceptions (sync only).
        view = cast(
            Callable[[HttpRequest], HttpResponseBase],
            convert_exception_to_response(self._get_response),  # type: ignore[attr-defined]
        )

        def served_host_only(request: HttpRequest) -> HttpResponseBase:
            # What CommonMiddleware does for pages: a Host not in ALLOWED_HOSTS raises
            # DisallowedHost, answered 400.
            request.get_host()
            # No health check (a SELECT 1 before every delivery's INSERT): the receiver
            # runs its statements again on a new connection when it finds the one it was
            # given dead (channels.pipeline.receive).
            database = connections[DEFAULT_DB_ALIAS]
            database.health_check_done = True  # type: ignore[attr-defined]  # not in the stubs
            return view(request)

        secured = SecurityMiddleware(convert_exception_to_response(served_host_only))
        self._middleware_chain = convert_exception_to_response(secured)


def dispatching_application(
    pages: WSGIHandler, webhooks: WSGIHandler
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application sending ``/webhooks/`` to ``webhooks`` and the rest to ``pages``."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIX):
            return webhooks(environ, start_response)
        return pages(environ, start_response)

    return application
