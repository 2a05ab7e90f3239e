"""Issuing and revoking API tokens: the only code that writes ``ApiToken``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.keys import SHOWN_PREFIX_LENGTH, digest_of, new_key
from accounts.models import ApiToken
from nventory import permissions
from nventory.errors import NotFound

# Longest lifetime a token may be given; a token without expiry is allowed but must be
# asked for explicitly.
MAX_LIFETIME = dt.timedelta(days=3650)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: ``key`` is its only clear copy, to hand to the client once."""

    token: ApiToken
    key: str


def _require_may_manage(actor: Any | None, user: User | None) -> None:
    if actor is None:
        return
    permissions.require(actor, permissions.MANAGE_API_TOKENS)
    # A token carries its user's powers: only a superuser hands out a superuser's.
    if user is not None and getattr(user, "is_superuser", False) and not actor.is_superuser:
        raise PermissionDenied("Only a superuser may issue a token for a superuser.")


@transaction.atomic
def issue_token(
    *,
    user: User,
    name: str = "",
    expires_in: dt.timedelta | None,
    actor: Any | None = None,
) -> IssuedToken:
    """Create a token for ``user``, valid for ``expires_in`` (None: until revoked).

    ``actor`` is the person issuing it (None for the ``issue_api_token`` command, run by
    whoever administers the machine); they need ``MANAGE_API_TOKENS``, and a superuser's
    token can only be issued by a superuser. Only the digest is stored; the returned key
    is the one clear copy.
    """
    _require_may_manage(actor, user)
    if expires_in is not None and not dt.timedelta(0) < expires_in <= MAX_LIFETIME:
        raise ValueError(f"A token's lifetime must be between 0 and {MAX_LIFETIME.days} days.")
    key = new_key()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[:SHOWN_PREFIX_LENGTH],
        digest=digest_of(key),
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
        created_by=actor.get_username() if actor is not None else "",
    )
    return IssuedToken(token=token, key=key)


@transaction.atomic
def revoke_token(*, token_id: int, actor: Any | None = None) -> ApiToken:
    """Refuse the token from now on; revoking it twice changes nothing.

    Raises ``NotFound`` for an unknown id. ``actor`` as for :func:`issue_token`.
    """
    token = ApiToken.objects.select_for_update().select_related("user").filter(pk=token_id).first()
    if token is None:
        raise NotFound(f"API token {token_id} does not exist.")
    _require_may_manage(actor, token.user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.revoked_by = actor.get_username() if actor is not None else ""
        token.save(update_fields=["revoked_at", "revoked_by"])
    return token


@transaction.atomic
def revoke_tokens_of(*, user: User, actor: Any | None = None) -> int:
    """Revoke every live token of ``user``; return how many were revoked."""
    _require_may_manage(actor, user)
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now(),
        revoked_by=actor.get_username() if actor is not None else "",
    )
