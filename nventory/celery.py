"""The Celery app: JSON messages, late acks, the django-celery-beat database scheduler."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")

app = Celery("nventory", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def consume_channel_push_queues(sender: Any, **kwargs: Any) -> None:
    """Each channel has its own push queue; a worker listens to all that exist.

    A channel created later is announced to running workers by ``channels`` itself
    (``add_consumer`` broadcast on save).
    """
    from channels.models import Channel
    from channels.tasks import push_queue_name

    for channel_id in Channel.objects.values_list("pk", flat=True):
        sender.add_task_queue(push_queue_name(channel_id))


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
