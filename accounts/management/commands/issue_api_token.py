"""Issue an API token and print it alone: ``TOKEN=$(manage.py issue_api_token erp --create)``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import services
from nventory import permissions


class Command(BaseCommand):
    help = (
        "Issue a new API token for a user and print only the key on standard output. "
        "--create adds the user if missing (with no password: it can use tokens, not log "
        "in); --role puts the user in a role; --rotate revokes the user's other tokens. "
        "The key is shown this once: only its digest is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--role",
            choices=sorted(permissions.ROLES),
            help="Add the user to this role (a group created by the migrations).",
        )
        parser.add_argument(
            "--rotate", action="store_true", help="Revoke the user's other live tokens."
        )
        parser.add_argument("--name", default="", help="What the token is for.")
        lifetime = parser.add_mutually_exclusive_group()
        lifetime.add_argument(
            "--expires-in-days",
            type=float,
            default=None,
            help="Days until the token is refused (default: API_TOKEN_LIFETIME_DAYS).",
        )
        lifetime.add_argument(
            "--no-expiry", action="store_true", help="A token valid until revoked."
        )

    @transaction.atomic
    def handle(
        self,
        *args: Any,
        username: str,
        create: bool,
        role: str | None,
        rotate: bool,
        name: str,
        expires_in_days: float | None,
        no_expiry: bool,
        **options: Any,
    ) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            if not create:
                raise CommandError(f"No user {username!r}; pass --create to create it.")
            user = user_model._default_manager.create_user(**{user_model.USERNAME_FIELD: username})
            self.stderr.write(f"Created user {username!r}.")
        if role is not None:
            group = Group.objects.filter(name=role).first()
            if group is None:
                raise CommandError(f"The role {role!r} does not exist: run `manage.py migrate`.")
            user.groups.add(group)
            self.stderr.write(f"{username!r} has the role {role!r}.")
        if rotate:
            revoked = services.revoke_tokens_of(user=user)
            self.stderr.write(f"Revoked {revoked} earlier token(s) of {username!r}.")
        days = settings.API_TOKEN_LIFETIME_DAYS if expires_in_days is None else expires_in_days
        try:
            issued = services.issue_token(
                user=user,
                name=name or "issued by manage.py issue_api_token",
                expires_in=None if no_expiry else dt.timedelta(days=days),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        expiry = issued.token.expires_at
        self.stderr.write(
            f"Issued token {issued.token.prefix}… for {username!r}, "
            + (f"valid until {expiry.isoformat()}." if expiry else "valid until revoked.")
        )
        # Only the key on stdout, so that `TOKEN=$(manage.py issue_api_token ...)` works.
        self.stdout.write(issued.key)
