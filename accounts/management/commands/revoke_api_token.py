"""Revoke API tokens: ``manage.py revoke_api_token erp [--prefix nvt_AbCdEfGh]``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import keys, services
from accounts.models import ApiToken


class Command(BaseCommand):
    help = (
        "Revoke the live API tokens of a user, or only the one whose key starts with "
        "--prefix (as shown in the admin and the console). A revoked token is refused at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--prefix", help="Revoke only the token whose key starts so (or the whole key)."
        )

    @transaction.atomic
    def handle(self, *args: Any, username: str, prefix: str | None, **options: Any) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if prefix is None:
            revoked = services.revoke_tokens_of(user=user)
        else:
            live = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
            if len(prefix) > keys.SHOWN_PREFIX_LENGTH:
                # Longer than what is kept in clear: taken as the whole key.
                matching = list(live.filter(digest=keys.digest_of(prefix)))
            else:
                matching = list(live.filter(prefix__startswith=prefix))
            if len(matching) > 1:
                raise CommandError(
                    f"{len(matching)} live tokens start with {prefix!r}: be longer."
                )
            for token in matching:
                services.revoke_token(token_id=token.pk)
            revoked = len(matching)
        self.stdout.write(f"Revoked {revoked} token(s) of {username!r}.")
