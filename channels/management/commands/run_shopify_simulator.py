"""Kept for old scripts: ``python -m channels.simulators --shopify PORT`` does the same
without starting Django."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels.simulators.__main__ import main


class Command(BaseCommand):
    help = "Run the Shopify simulator (same as python -m channels.simulators --shopify PORT)."
    # The simulator touches no database: checks would need one for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port.")
        parser.add_argument("--seed-file", type=Path)

    def handle(
        self, *args: Any, host: str, port: int, seed_file: Path | None, **options: Any
    ) -> None:
        argv = ["--host", host, "--shopify", str(port)]
        if seed_file is not None:
            argv += ["--seed-file", str(seed_file)]
        if main(argv) != 0:
            raise CommandError("The simulator stopped with an error.")
