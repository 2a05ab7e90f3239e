"""End-to-end fixtures: a real Celery worker process on the test database.

The web side is pytest-django's ``live_server`` (real HTTP, in a thread of this process);
the marketplace is the simulator process (``shopify_simulator``); the worker is a
separate process started here, so webhooks, pushes and retries cross real process
boundaries exactly as in production.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def _test_database_url() -> str:
    """The server's URL with the test database's name in place of the main one."""
    parts = urlsplit(str(settings.DATABASE_URL))
    return urlunsplit(parts._replace(path="/" + str(settings.DATABASES["default"]["NAME"])))


# The application_name of the database connections of the processes the tests start
# (libpq reads PGAPPNAME): a transactional test's teardown ends them before its flush.
TEST_PROCESSES_APPLICATION_NAME = "nventory-test-process"


def _process_env() -> dict[str, str]:
    return {
        **os.environ,
        "PGAPPNAME": TEST_PROCESSES_APPLICATION_NAME,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": str(settings.REDIS_URL),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Module scope: the processes end with the tests of the module that asked for them.
# pytest-django runs every transactional test after the others, whatever its package, so
# a wider scope would leave a worker taking the tasks of unrelated tests (and racing their
# in-process ingest and pushes) and writing to the test database while it is flushed.
@pytest.fixture(scope="module")
def nventory_web(django_db_setup: Any) -> Iterator[str]:
    """gunicorn serving nventory on the test database; yields its base URL."""
    port = _free_port()
    log_path = REPO_ROOT / ".data" / "e2e-web.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "nventory.wsgi",
                f"--bind=127.0.0.1:{port}",
                "--workers=2",
                "--threads=8",
            ],
            cwd=REPO_ROOT,
            env=_process_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text(errors="replace")) from None
                time.sleep(0.1)
        yield url
    finally:
        web.terminate()
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()


@pytest.fixture(scope="module")
def nventory_worker(django_db_setup: Any) -> Iterator[None]:
    env = _process_env()
    log_path = REPO_ROOT / ".data" / "e2e-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "nventory",
                "worker",
                "--pool=threads",
                "--concurrency=8",
                "--queues=celery,webhooks,push",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
                "--hostname=e2e@%h",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_log(log_path, b"ready.", worker, timeout_s=60)
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _wait_for_log(path: Path, marker: bytes, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker in path.read_bytes():
            return
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{path.read_text(errors='replace')}")
        time.sleep(0.1)
    raise TimeoutError(f"worker not ready after {timeout_s}s:\n{path.read_text()[-3000:]}")


def wait_until(
    predicate: Callable[[], Any], *, timeout_s: float = 20, describe: Callable[[], str] = str
) -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``describe()`` if it never is."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {timeout_s}s: {describe()}")
        time.sleep(0.05)


_shops = itertools.count(1)


def wire_simulated_shop(
    simulator: Any,
    *,
    web_url: str,
    location: Any,
    sku: Any,
    item_id: int,
    variant_id: int,
    units_shown: int = 0,
    shop_settings: dict[str, Any] | None = None,
    **channel_fields: Any,
) -> Any:
    """A shop on the simulator selling ``sku`` as one item, and its active channel in
    nventory with the listing, webhooks pointed at ``web_url``."""
    from channels.models import Channel
    from channels.pipeline import ratelimit
    from tests import factories

    name = f"e2e-{next(_shops)}-{time.monotonic_ns()}"
    secret = f"secret-{name}"
    channel = factories.make_channel(
        locations=[location],
        slug=name,
        name=name,
        mode=Channel.Mode.ACTIVE,
        api_base_url=simulator.shop_url(name),
        credentials={"access_token": f"shpat_{name}"},
        webhook_secret=secret,
        rate_limit_per_s=1000,
        platform_settings={"location_id": 1, "retry_base_s": 0.05},
        **channel_fields,
    )
    ratelimit.reset(channel_id=channel.pk)
    simulator.create_shop(
        name,
        location_id=1,
        webhook_url=f"{web_url}/webhooks/shopify/{name}/",
        webhook_secret=secret,
        webhook_retry_base_s=0.2,
        **(shop_settings or {}),
    )
    simulator.add_items(
        name,
        [
            {
                "inventory_item_id": item_id,
                "variant_id": variant_id,
                "sku": sku.code,
                "available": units_shown,
            }
        ],
    )
    factories.make_listing(
        channel=channel,
        sku=sku,
        external_id=str(item_id),
        external_sku=sku.code,
        extra_identifiers={"variant_id": str(variant_id)},
    )
    return channel
