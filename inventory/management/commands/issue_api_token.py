"""Print the REST API token of a user: ``manage.py issue_api_token alice [--create]``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the API token of a user (created on first use). --create adds the user if "
        "missing; --rotate replaces an existing token. Only the key goes to stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the user's token with a new one."
        )

    @transaction.atomic
    def handle(
        self, *args: Any, username: str, create: bool, rotate: bool, **options: Any
    ) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            if not create:
                raise CommandError(f"No user {username!r}; pass --create to create it.")
            # No password: the account can use its token but cannot log in to the admin.
            user = user_model._default_manager.create_user(**{user_model.USERNAME_FIELD: username})
            self.stderr.write(f"Created user {username!r}.")
        if rotate:
            Token.objects.filter(user=user).delete()
        token, created = Token.objects.get_or_create(user=user)
        if created:
            self.stderr.write(f"Issued a new token for {username!r}.")
        # Only the key on stdout, so that `TOKEN=$(manage.py issue_api_token ...)` works.
        self.stdout.write(token.key)
