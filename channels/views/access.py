"""Who may open a console page: a signed-in user who may read what it shows."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

View = Callable[..., HttpResponse]


class HtmxHttpRequest(HttpRequest):
    """A request as the console's views see it: ``HtmxMiddleware`` adds ``htmx``."""

    htmx: HtmxDetails


def console_page(*, read_permission: str) -> Callable[[View], View]:
    """Decorate a console view: signed out goes to the sign-in page; signed in without
    ``read_permission`` (a model's ``view_`` permission, which every role holds) is 403."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(read_permission):
                raise PermissionDenied(f"This page needs the permission {read_permission!r}.")
            return view(request, *args, **kwargs)

        return login_required(guarded)

    return decorate
