from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.core import signals
from django.db import close_old_connections, connection

from tests import factories

# The suite's channels point at simulators on loopback, in this process and in the
# processes it starts (end-to-end tests): allowed only with this setting.
os.environ["CHANNELS_ALLOW_LOCAL_HOSTS"] = "1"
settings.CHANNELS_ALLOW_LOCAL_HOSTS = True


@pytest.fixture(scope="session", autouse=True)
def _empty_cache(django_db_setup: None) -> None:
    """The cache (Redis) outlives a test run while the test database does not: counts kept
    under a channel's id (eBay's daily revisions, rate budgets) must not meet a new channel
    that reuses the id in the next run."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def sku(db):
    return factories.make_sku()


@pytest.fixture
def location(db):
    return factories.make_location()


@pytest.fixture
def unique_key():
    counter = itertools.count()
    return lambda prefix="key": f"{prefix}-{next(counter)}"


@pytest.fixture
def api_credentials(db) -> dict[str, str]:
    """Headers that authorise every API operation: a superuser's API token (hashed,
    accounts.ApiToken). The one place to change when authentication or the API's
    permissions change."""
    from django.contrib.auth import get_user_model

    from accounts import services as token_services

    user = get_user_model().objects.create_superuser(
        username=f"api-root-{uuid.uuid4().hex[:8]}", email="", password=None
    )
    issued = token_services.issue_token(user=user, expires_in=None)
    return {"Authorization": f"Token {issued.key}"}


@pytest.fixture
def authorised_api_client(api_credentials):
    """An ``APIClient`` allowed every API operation (``api_credentials``)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=api_credentials["Authorization"])
    return client


@pytest.fixture
def wsgi_requests_keep_the_test_connection():
    """Requests sent to the WSGI application itself (not through Django's test client)
    would close the database connection at their end, and with it the test's transaction;
    the test client disconnects the same handler for the same reason."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """A transactional test's database is emptied with one TRUNCATE of every table. The
    processes it started (the web server and the worker of an end-to-end module) may still
    be finishing a task in their own transactions, and a TRUNCATE taking its locks table by
    table against such a transaction is a deadlock: the flush fails and a later test
    inherits the rows. Their connections are ended first (they reconnect for their next
    task: health checks see to it), and again and again until the flush is done: a worker
    busy with retries reconnected at once, and its new transaction met the TRUNCATE
    half-way."""
    if not _flushes_the_database(item):
        return (yield)
    with _test_processes_kept_off_the_database():
        return (yield)


def _flushes_the_database(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(
        (marker and marker.kwargs.get("transaction"))
        or {"transactional_db", "live_server"} & fixtures
    )


# Well within the second PostgreSQL waits on a lock before it looks for a deadlock.
_ENDING_EVERY_S = 0.05


@contextlib.contextmanager
def _test_processes_kept_off_the_database() -> Iterator[None]:
    """The test processes' connections to the test database ended now, and every
    ``_ENDING_EVERY_S`` until the block ends. Through a connection of its own to the server
    (not Django's, which the test's thread is using to flush)."""
    from tests.channels.e2e.conftest import TEST_PROCESSES_APPLICATION_NAME

    database = connection.settings_dict
    given = {
        "host": database["HOST"],
        "port": database["PORT"],
        "user": database["USER"],
        "password": database["PASSWORD"],
    }
    server = {key: value for key, value in given.items() if value}
    stop = threading.Event()
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as server_connection:

        def end_them() -> None:
            server_connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = %s",
                [database["NAME"], TEST_PROCESSES_APPLICATION_NAME],
            )

        def keep_ending_them() -> None:
            while not stop.wait(_ENDING_EVERY_S):
                end_them()

        end_them()
        ending = threading.Thread(target=keep_ending_them, name="ending test connections")
        ending.start()
        try:
            yield
        finally:
            stop.set()
            ending.join()
