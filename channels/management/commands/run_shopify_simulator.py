"""Serve the Shopify simulator (``channels.simulators.shopify``) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels.simulators.shopify.simulator import ShopifySimulatorServer


class Command(BaseCommand):
    help = "Run the Shopify simulator (Admin GraphQL inventory API, webhooks, /_sim/ control)."
    # The simulator touches no database: checks would need one for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port.")
        parser.add_argument(
            "--seed-file",
            type=Path,
            help="JSON {shops: [{...shop settings, items: [...]}]} to create at start "
            "(``prepare_local`` writes one for the demo store of ``make run``).",
        )

    def handle(
        self, *args: Any, host: str, port: int, seed_file: Path | None, **options: Any
    ) -> None:
        server = ShopifySimulatorServer(host, port)
        if seed_file is not None:
            self._seed(server, seed_file)

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        # Callers (the test fixture, scripts) read the URL from this exact first line.
        sys.stdout.write(f"Shopify simulator listening on {server.url}\n")
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def _seed(self, server: ShopifySimulatorServer, seed_file: Path) -> None:
        try:
            seed = json.loads(seed_file.read_text())
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read the seed file {seed_file}: {error}") from error
        for shop in seed.get("shops", []):
            items = shop.pop("items", [])
            server.simulator.create_shop(shop)
            server.simulator.add_items(shop["shop"], {"items": items})
            self.stderr.write(f"Seeded shop {shop['shop']} with {len(items)} items")
