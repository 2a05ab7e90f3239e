"""Which workers push, and the limit serving processes put on every statement."""

from typing import Any

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
            # and plans each of its prepared statements once (nventory.db)
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_generic_plan"
    finally:
        connection_created.disconnect(dispatch_uid="nventory.db")
        connection.close()  # the next test connects without the limit


def test_every_wait_on_redis_the_broker_and_mail_is_bounded(settings):
    """A server that accepts connections and never answers fails the call, whichever
    client waits on it: the cache, the pipeline's Redis, the broker, the mail server."""
    from django.core.cache import caches

    from channels.pipeline import ratelimit
    from nventory.celery import app

    timeout = settings.REDIS_SOCKET_TIMEOUT_S
    assert 0 < timeout <= 5
    cache: Any = caches["default"]
    cache_pool = cache._cache.get_client().connection_pool
    assert cache_pool.connection_kwargs["socket_timeout"] == timeout
    assert cache_pool.connection_kwargs["socket_connect_timeout"] == timeout
    pipeline_pool = ratelimit._client().connection_pool
    assert pipeline_pool.connection_kwargs["socket_timeout"] == timeout
    assert pipeline_pool.connection_kwargs["socket_connect_timeout"] == timeout
    assert app.conf.broker_connection_timeout == timeout
    assert app.conf.task_publish_retry_policy["max_retries"] <= 3
    if app.conf.broker_url.startswith("redis"):
        options = app.conf.broker_transport_options
        assert options["socket_timeout"] == options["socket_connect_timeout"] == timeout
    assert 0 < settings.EMAIL_TIMEOUT <= 60
    assert settings.STATEMENT_TIMEOUT_S > 0
    assert 0 < settings.WAKE_UP_WAIT_S < 1  # a webhook is acknowledged within 1 s


def test_the_visibility_timeout_outlasts_every_task_and_every_countdown(settings):
    """Below either, a task would be delivered again while it runs or waits."""
    from channels.connectors.http import MAX_RETRY_AFTER_S
    from channels.pipeline.push import MAX_RETRY_DELAY_S
    from nventory.celery import app

    app.loader.import_default_modules()  # every app's tasks, as a worker loads them
    visibility = settings.CELERY_VISIBILITY_TIMEOUT_S
    assert visibility > settings.CELERY_TASK_TIME_LIMIT
    longest = max(task.time_limit or 0 for task in app.tasks.values())
    assert longest >= 3600  # the reconciliation poll's, so the tasks were all loaded
    assert visibility > longest
    assert visibility > MAX_RETRY_DELAY_S
    assert visibility > MAX_RETRY_AFTER_S
    assert visibility > settings.PUSH_BREAKER_MAX_COOLDOWN_S


def test_the_redis_broker_channel_takes_the_configured_visibility_timeout(settings):
    """What the transport actually uses, read from a live channel (celery#7651 and #9339:
    a configured value that never reached the transport)."""
    from nventory.celery import app

    if not app.conf.broker_url.startswith("redis"):
        pytest.skip("the visibility timeout is the Redis transport's")
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        assert channel.visibility_timeout == settings.CELERY_VISIBILITY_TIMEOUT_S
        options: Any = connection.transport_options
        assert options["socket_timeout"] == settings.REDIS_SOCKET_TIMEOUT_S
