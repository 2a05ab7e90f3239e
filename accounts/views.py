"""The console's API tokens page: issue a token (its key shown once), see and revoke them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import selectors, services
from nventory import permissions

READ_PERMISSION = "accounts.view_apitoken"


class IssueTokenForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=selectors.token_holders(), help_text="The account the client acts as."
    )
    name = forms.CharField(max_length=100, required=False, help_text="What the token is for.")
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=services.MAX_LIFETIME.days,
        initial=90,
        required=False,
        help_text="Empty: valid until revoked.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fresh on every form, not once at import.
        self.fields["user"].queryset = selectors.token_holders()  # type: ignore[attr-defined]


def _page(request: HttpRequest, form: IssueTokenForm, issued_key: str = "") -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "issued_key": issued_key,
            "rows": selectors.tokens_for_console(now=timezone.now()),
            "may_manage": request.user.has_perm(permissions.MANAGE_API_TOKENS),
        },
    )


def _require_read(request: HttpRequest) -> None:
    if not request.user.has_perm(READ_PERMISSION):
        raise PermissionDenied(f"This page needs the permission {READ_PERMISSION!r}.")


@login_required
def tokens_view(request: HttpRequest) -> HttpResponse:
    """GET: the tokens and the issue form. POST: issue one and show its key this once."""
    _require_read(request)
    if request.method != "POST":
        return _page(request, IssueTokenForm())
    form = IssueTokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form)
    days = form.cleaned_data["expires_in_days"]
    issued = services.issue_token(
        user=form.cleaned_data["user"],
        name=form.cleaned_data["name"],
        expires_in=dt.timedelta(days=days) if days else None,
        actor=request.user,
    )
    # Rendered, not redirected: the key exists in clear only in this answer.
    response = _page(request, IssueTokenForm(), issued_key=issued.key)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_token_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one token; answers the refreshed row to htmx, the page otherwise."""
    _require_read(request)
    token = services.revoke_token(token_id=token_id, actor=request.user)
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "accounts/tokens.html#token-row",
            {"row": selectors.TokenRow.of(token, now=timezone.now()), "may_manage": True},
        )
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("tokens:list")
