"""The Celery app: JSON messages, late acks, the django-celery-beat database scheduler.

Which queues a worker consumes per channel is the channels app's concern
(``channels.pipeline.workers``).
"""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")

app = Celery("nventory", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
