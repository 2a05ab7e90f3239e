"""Start simulators: ``python -m channels.simulators --shopify 8765 [--seed-file F]``.

One server per platform named, each on its port (0 picks a free one), all in this process,
until Ctrl-C or SIGTERM. For each, in the order given, one line on stdout:
``<Platform> simulator listening on <url>`` (callers read the URL from it), then


"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from channels.simulators.harness import SimulatorServer
from channels.simulators.registry import PLATFORMS

READY_LINE = "Simulators ready"


def listening_line(display_name: str, url: str) -> str:
    return f"{display_name} simulator listening on {url}"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m channels.simulators",
        description="Run marketplace simulators (Admin APIs, webhooks, /_sim/ control API).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    for key, platform in PLATFORMS.items():
        parser.add_argument(
            f"--{key}",
            type=int,
            metavar="PORT",
            help=f"start the {key} simulator on PORT (0: a free port; make run uses "
            f"{platform.default_port})",
        )
    parser.add_argument(
        "--seed-file",
        type=Path,
        help="JSON of tenants to create at start, under each platform's key "
        "(``prepare_local`` writes one for the demo store of ``make run``)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    wanted = [(key, getattr(args, key)) for key in PLATFORMS if getattr(args, key) is not None]
    if not wanted:
        parser().error(f"name at least one platform: {', '.join('--' + k for k in PLATFORMS)}")
    seed = {}
    if args.seed_file is not None:
        try:
            seed = json.loads(args.seed_file.read_text())
        except (OSError, ValueError) as error:
            print(f"Cannot read the seed file {args.seed_file}: {error}", file=sys.stderr)
            return 2
    servers: list[SimulatorServer] = []
    try:
        for key, port in wanted:
            simulator = PLATFORMS[key].create()
            server = SimulatorServer(simulator, args.host, port)
            # Each platform's tenants under its own key; the file's top level for a file
            # written for one platform alone.
            seeded = simulator.seed(seed.get(key, seed))
            if seeded:
                print(f"Seeded {seeded} {simulator.tenant_collection} ({key})", file=sys.stderr)
            server.start_in_thread()
            servers.append(server)
            print(listening_line(simulator.display_name, server.url), flush=True)
        print(READY_LINE, flush=True)
        _wait_for_stop()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    return 0


def _wait_for_stop() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
