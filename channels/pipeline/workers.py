"""Celery worker wiring of the push pipeline: one queue per channel.

A pushing worker consumes every channel's push queue, those that exist when it starts and
those of channels created later (announced by broadcast). Imported by ``channels.tasks``,
which every worker loads, so the hooks are in place wherever tasks run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery.signals import worker_ready
from celery.worker.control import control_command

from channels.models import Channel
from channels.pipeline.enqueue import push_queue_name
from nventory.celery import app

# A worker that consumes this queue (nothing is ever sent to it) also consumes every
# channel's own push queue, so pushes and webhooks can run in separate workers.
PUSH_QUEUES_MARKER = "push"


def takes_pushes(queue_names: set[str]) -> bool:
    """Whether a worker consuming these queues pushes: named so, or started without -Q."""
    return PUSH_QUEUES_MARKER in queue_names or queue_names == {app.conf.task_default_queue}


def _consumed_queue_names(consumer: Any) -> set[str]:
    return {queue.name for queue in consumer.task_consumer.queues}


@worker_ready.connect
def consume_channel_push_queues(sender: Any, **kwargs: Any) -> None:
    """Each channel has its own push queue; a pushing worker listens to all that exist.

    A channel created later is announced to running workers by ``channels`` itself
    (the ``consume_push_queue`` broadcast below, when it is created).
    """
    if not takes_pushes(_consumed_queue_names(sender)):
        return
    for channel_id in Channel.objects.values_list("pk", flat=True):
        sender.add_task_queue(push_queue_name(channel_id))


@control_command(args=[("queue", str)], signature="<queue>")
def consume_push_queue(state: Any, queue: str) -> dict[str, str]:
    """Broadcast when a channel is created: pushing workers start consuming its queue."""
    if not takes_pushes(_consumed_queue_names(state.consumer)):
        return {"ok": "not a pushing worker"}
    state.consumer.call_soon(state.consumer.add_task_queue, queue)
    return {"ok": f"consuming {queue}"}


def announce_push_queue(channel_id: int) -> None:
    """Tell running pushing workers to consume a new channel's queue (best effort)."""
    # A broker that is down only delays this: a worker started later picks the queue up.
    with contextlib.suppress(Exception):
        app.control.broadcast(
            "consume_push_queue", arguments={"queue": push_queue_name(channel_id)}, reply=False
        )
