"""A limit on every statement of the serving processes: web requests and Celery tasks.

gunicorn's threads and Celery's threads pool enforce no time limit on a request or a task,
so a statement stuck behind a lock would hold its thread for good; PostgreSQL ends it
instead (``STATEMENT_TIMEOUT_S``), the request answers an error and the task fails into
its retry or the sweeps. ``manage.py`` commands (migrations above all) are not limited.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.signals import connection_created


def limit_statement_time() -> None:
    """From now on, every new database connection of this process gets the limit."""
    connection_created.connect(set_statement_timeout, weak=False, dispatch_uid=__name__)


def set_statement_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    limit_ms = int(settings.STATEMENT_TIMEOUT_S * 1000)
    if limit_ms > 0:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{limit_ms}ms"])
