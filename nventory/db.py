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

And ``retried_on_deadlock``: a stock service PostgreSQL ended to break a deadlock runs
again, rather than its caller answering an error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])

# Tries of a transaction PostgreSQL ended to break a deadlock or a serialization conflict.
TRANSACTION_TRIES = 3


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


def retried_on_deadlock(function: FunctionT) -> FunctionT:
    """Run ``function`` (a service that writes in a transaction of its own) again when
    PostgreSQL ended its transaction to break a deadlock: the transaction left nothing
    behind, so running it again is what the caller asked for, rather than an error 500.

    Inside a caller's transaction it runs once: that transaction is spoilt, and only its
    owner can run it again (the ingest retries its receipt).
    """

    @functools.wraps(function)
    def retrying(*args: Any, **kwargs: Any) -> Any:
        if connection.in_atomic_block:
            return function(*args, **kwargs)
        for tried in range(1, TRANSACTION_TRIES + 1):
            try:
                return function(*args, **kwargs)
            except OperationalError as error:
                conflict = isinstance(
                    error.__cause__,
                    psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure,
                )
                if not conflict or tried == TRANSACTION_TRIES:
                    raise
                logger.info("%s: %s; running it again", function.__name__, error)
        raise AssertionError("unreachable")

    return retrying  # type: ignore[return-value]
