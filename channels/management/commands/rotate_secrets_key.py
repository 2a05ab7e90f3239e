"""Encrypt every stored secret (channel credentials, webhook secrets) with the newest key.

With ``SECRETS_ENCRYPTION_KEYS`` set: put a new key first (``--print-new-key`` makes one),
keep the old ones after it, restart, run this command, then drop the old keys. Without it
(local runs): ``--new-key`` adds a generated key first in the local key file, then the rows
are encrypted with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from nventory import encryption


class Command(BaseCommand):
    help = "Encrypt every stored secret again with the newest encryption key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-key",
            action="store_true",
            help="Local key file only: generate a key and make it the newest first.",
        )
        parser.add_argument(
            "--print-new-key",
            action="store_true",
            help="Print a new key alone on standard output and change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["print_new_key"]:
            self.stdout.write(encryption.generate_key())
            return
        if options["new_key"]:
            if settings.SECRETS_ENCRYPTION_KEYS:
                raise CommandError(
                    "The keys come from SECRETS_ENCRYPTION_KEYS: put the new key first there "
                    "(--print-new-key makes one), restart, and run this command again."
                )
            encryption.add_key_to_file(Path(settings.SECRETS_KEY_FILE), encryption.generate_key())
        written = encryption.reencrypt_every_secret()
        self.stdout.write(f"{written} rows encrypted with the newest key.")
