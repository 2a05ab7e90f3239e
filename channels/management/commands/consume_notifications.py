"""Long-poll the notification queue of every channel whose platform delivers through one.

A process of its own (``Procfile``: ``notifications``), so that queued events (Amazon's
SQS) are stored as soon as they arrive, not at the next 10 s beat pull; the beat pull stays
as the net under it. Each message is stored (deduplicated by its platform id) before it is
deleted from the queue, so killing this process at any point loses nothing: what it had not
deleted comes back after the queue's visibility timeout.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from channels.connectors.registry import connector_class_for
from channels.connectors.types import Capability
from channels.models import Channel
from channels.pipeline import receive

logger = logging.getLogger(__name__)


def queue_channel_ids() -> list[int]:
    """Unpaused channels whose platform delivers its events through a queue."""
    return [
        channel.pk
        for channel in Channel.objects.exclude(mode=Channel.Mode.PAUSED)
        if Capability.QUEUE_NOTIFICATIONS in connector_class_for(channel.platform).capabilities
    ]


class Command(BaseCommand):
    help = "Long-poll the notification queues of queue-delivered channels (Amazon SQS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--idle-sleep-s",
            type=float,
            default=1.0,
            help="pause after a round that found no channel to pull",
        )

    def handle(self, *args: Any, once: bool, idle_sleep_s: float, **options: Any) -> None:
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            started = time.monotonic()
            stored_in_round = 0
            channel_ids = queue_channel_ids()
            for channel_id in channel_ids:
                if stopping:
                    break
                # A queue that cannot be read is logged by the pull, and tried next round.
                stored = receive.pull_notifications(channel_id=channel_id)
                stored_in_round += stored
                if stored:
                    logger.info("stored %d notifications of channel %s", stored, channel_id)
            if once:
                return
            # A long-lived process: a connection the database dropped is replaced.
            close_old_connections()
            # Long polls make an empty round last; one that came back at once (no channel,
            # no long poll configured) must not spin.
            idle_left_s = idle_sleep_s - (time.monotonic() - started)
            if not stored_in_round and idle_left_s > 0:
                time.sleep(idle_left_s)
