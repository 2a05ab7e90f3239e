"""The Celery app: JSON messages, late acks, the django-celery-beat database scheduler."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_ready
from celery.worker.control import control_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")

app = Celery("nventory", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
    (the ``consume_push_queue`` broadcast below, on save).
    """
    from channels.models import Channel
    from channels.pipeline.enqueue import push_queue_name

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


@task_prerun.connect
@task_postrun.connect
def recycle_stale_database_connections(sender: Any = None, **kwargs: Any) -> None:
    """What Django does around a request: drop a connection past CONN_MAX_AGE or broken.

    Celery's own per-task close is turned off (CELERY_DB_REUSE_MAX): reconnecting for
    every task cost more than the tasks themselves. An eager task runs inside its caller's
    transaction, whose connection is not ours to close.
    """
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def limit_statement_time(**kwargs: Any) -> None:
    """Every database connection of a worker ends a statement after STATEMENT_TIMEOUT_S
    (the threads pool enforces no task time limit: ``nventory.db``)."""
    from nventory import db

    db.limit_statement_time()
