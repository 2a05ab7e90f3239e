"""Reads of API tokens for the console and the admin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from accounts.models import ApiToken

# The console lists this many tokens, newest first; older ones are in the admin.
CONSOLE_TOKEN_ROWS = 200


@dataclass(frozen=True)
class TokenRow:
    """One token as the console lists it: the token and its state at the time of reading."""

    token: ApiToken
    state: str

    @classmethod
    def of(cls, token: ApiToken, *, now: dt.datetime) -> TokenRow:
        return cls(token=token, state=token.state_at(now))


def tokens_for_console(*, now: dt.datetime) -> list[TokenRow]:
    """The newest tokens with their users and states, newest first."""
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-id")
    return [TokenRow.of(token, now=now) for token in tokens[:CONSOLE_TOKEN_ROWS]]


def token_holders() -> QuerySet:
    """Active accounts a token may be issued to, by name."""
    user_model = get_user_model()
    return user_model._default_manager.filter(is_active=True).order_by(user_model.USERNAME_FIELD)
