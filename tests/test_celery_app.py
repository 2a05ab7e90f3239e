"""Which workers push, and the limit a worker puts on every statement."""

import pytest

from nventory.celery import takes_pushes


def test_a_worker_consuming_the_push_marker_queue_pushes():
    assert takes_pushes({"celery", "push"})
    assert takes_pushes({"push"})


def test_a_worker_started_without_queues_does_everything():
    assert takes_pushes({"celery"})


def test_a_webhook_only_worker_does_not_push():
    assert not takes_pushes({"webhooks"})
    assert not takes_pushes({"celery", "webhooks"})


@pytest.mark.django_db(transaction=True)
def test_a_worker_connection_ends_a_statement_after_the_task_time_limit():
    """Threads-pool workers enforce no task time limit: PostgreSQL does, per statement."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    from nventory.celery import app, bound_statement_time, limit_statement_time

    assert app.conf.task_time_limit == 30
    bound_statement_time()  # what the worker_init signal runs
    try:
        connection.close()
        with connection.cursor() as cursor:  # a new connection, as a worker opens them
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "30s"
    finally:
        connection_created.disconnect(limit_statement_time)
        connection.close()  # the next test connects without the limit
