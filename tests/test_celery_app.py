"""Which workers push, and the limit serving processes put on every statement."""

import pytest

from channels.pipeline.workers import takes_pushes


def test_a_worker_consuming_the_push_marker_queue_pushes():
    assert takes_pushes({"celery", "push"})
    assert takes_pushes({"push"})


def test_a_worker_started_without_queues_does_everything():
    assert takes_pushes({"celery"})


def test_a_webhook_only_worker_does_not_push():
    assert not takes_pushes({"webhooks"})
    assert not takes_pushes({"celery", "webhooks"})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("serving", ["worker", "web"])
def test_a_serving_process_ends_a_statement_after_the_limit(serving, settings):
    """Workers and web threads enforce no time limit of their own: PostgreSQL does."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    from nventory.celery import limit_statement_time

    settings.STATEMENT_TIMEOUT_S = 30
    if serving == "worker":
        limit_statement_time()  # what the worker_init signal runs
    else:
        import importlib

        import nventory.wsgi

        importlib.reload(nventory.wsgi)  # its body, as gunicorn and runserver run it
    try:
        connection.close()
        with connection.cursor() as cursor:  # a new connection, as the process opens them
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "30s"
    finally:
        connection_created.disconnect(dispatch_uid="nventory.db")
        connection.close()  # the next test connects without the limit
