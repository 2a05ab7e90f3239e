"""Serve the Shopify simulator (``channels.simulators.shopify``) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from channels.simulators.shopify import ShopifySimulatorServer


class Command(BaseCommand):
    help = "Run the Shopify simulator (Admin GraphQL inventory API, webhooks, /_sim/ control)."
    # The simulator touches no database: checks would need one for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port.")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        server = ShopifySimulatorServer(host, port)

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
