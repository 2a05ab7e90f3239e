"""The database session of the serving processes (web requests and Celery tasks).

A limit on every statement.

gunicorn's threads and Celery's threads pool enforce no time limit on a request or a task,
so a statement stuck behind a lock would hold its thread for good; PostgreSQL ends it
instead (``STATEMENT_TIMEOUT_S``), the request answers an error and the task fails into
its retry or the sweeps. ``manage.py`` commands (migrations above all) are not limited.

Prepared statements planned once. The statements of ``nventory.prepared_sql`` run for every
webhook and every push; left to choose, PostgreSQL kept planning two of them at each run
(their generic plan is estimated dearer, though the same), which is what preparing them
was to save. They are written for a generic plan (a partial index's condition in the
text), and the ORM's statements are never prepared, so nothing else is affected.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.signals import connection_created


def limit_statement_time() -> None:
    """From now on, every new database connection of this process gets the limit (and
    plans a prepared statement once)."""
    connection_created.connect(set_statement_timeout, weak=False, dispatch_uid=__name__)


def set_statement_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    limit_ms = max(0, int(settings.STATEMENT_TIMEOUT_S * 1000))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('plan_cache_mode', 'force_generic_plan', false)",
            [f"{limit_ms}ms"],
        )
