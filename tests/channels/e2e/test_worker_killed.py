"""A worker killed mid-burst loses nothing (RELIABILITY F1, the fast version).

A stack of its own: gunicorn and a Celery worker on a Redis database of their own, so
that the session's worker (which shares the test database) takes none of this work. The
marketplace places orders that reach that gunicorn as signed webhooks; mid-burst the
worker is killed with SIGKILL (no warm shutdown: its claims, its receipts in flight and its
unacknowledged tasks are left as they are), and a second one is started. The sweeps beat
would run are run here, every two seconds. Every order must be committed exactly once,
every shop must end at the master's figure, nothing may be dead-lettered.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from channels.models import DeadLetter, PendingPush, WebhookReceipt
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.e2e.conftest import (
    REPO_ROOT,
    _free_port,
    _process_env,
    wait_until,
    wire_simulated_shop,
)

pytestmark = pytest.mark.slow

ITEM_ID = 7001
VARIANT_ID = 8001
ORDERS = 60
# Claims of a dead worker lapse after this (production: 60 s).
CLAIM_LEASE_S = 3


def _own_redis_url() -> str:
    """The session's Redis server, another database on it."""
    parts = urlsplit(str(settings.REDIS_URL))
    current = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(current + 8) % 16}"))


class _Stack:
    def __init__(self, log_dir: Path) -> None:
        self.env = {
            **_process_env(),
            "REDIS_URL": _own_redis_url(),
            "PUSH_CLAIM_LEASE_S": str(CLAIM_LEASE_S),
        }
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.web_url = ""

    def start(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / log_name).open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start_web(self) -> None:
        port = _free_port()
        self.start(
            [
                *(sys.executable, "-m", "gunicorn", "nventory.wsgi"),
                *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8"),
            ],
            "e2e-killed-web.log",
        )
        self.web_url = f"http://127.0.0.1:{port}"

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log_name = f"e2e-killed-{name}.log"
        process = self.start(
            [
                *(sys.executable, "-m", "celery", "-A", "nventory", "worker"),
                *("--pool=threads", "--concurrency=4", "--queues=celery,webhooks,push"),
                *("--without-mingle", "--without-gossip", "--loglevel=INFO"),
                f"--hostname={name}@%h",
            ],
            log_name,
        )
        wait_until(lambda: b"ready." in (self.log_dir / log_name).read_bytes(), timeout_s=60)
        return process

    def sweep(self) -> None:
        """What beat runs: the outbox sweep, and the receipts sweep (sooner than in
        production: receipts a second old, not thirty)."""
        subprocess.run(
            [
                *(sys.executable, "manage.py", "shell", "-c"),
                "from channels.pipeline import ingest, outbox; "
                "outbox.sweep(); "
                "ingest.sweep_unprocessed_receipts(older_than_s=1)",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def own_stack(transactional_db: Any) -> Iterator[_Stack]:
    log_dir = REPO_ROOT / ".data"
    log_dir.mkdir(exist_ok=True)
    stack = _Stack(log_dir)
    try:
        yield stack
    finally:
        stack.stop()


def test_a_worker_killed_mid_burst_loses_nothing(own_stack, shopify_simulator):
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 200)
    own_stack.start_web()
    shops = [
        wire_simulated_shop(
            shopify_simulator,
            web_url=own_stack.web_url,
            location=location,
            sku=sku,
            item_id=ITEM_ID,
            variant_id=VARIANT_ID,
        )
        for _ in range(2)
    ]
    # Started after the channels exist: a worker listens to the push queues there are.
    first = own_stack.start_worker("killed-first")
    selling = shops[0]

    def shown() -> list[int]:
        return [int(shopify_simulator.available(c.slug, ITEM_ID)) for c in shops]

    own_stack.sweep()
    wait_until(lambda: shown() == [200, 200], timeout_s=30, describe=lambda: str(shown()))

    # Slow shops: pushes are in flight most of the time, so the kill finds some.
    for channel in shops:
        shopify_simulator.faults(channel.slug, latency_ms=300)

    def buy(_: int) -> int:
        order = shopify_simulator.place_order(
            selling.slug, [{"variant_id": VARIANT_ID, "quantity": 1}]
        )
        return int(order["order_id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        placed = [pool.submit(buy, n) for n in range(ORDERS)]
        # Kill it while it works: orders coming in, and a push of its in flight.
        wait_until(
            lambda: (
                WebhookReceipt.objects.filter(channel=selling).count() >= ORDERS // 6
                and PendingPush.objects.filter(
                    listing__channel__in=shops, claimed_until__gt=timezone.now()
                ).exists()
            ),
            timeout_s=30,
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        # What the dead worker had taken and not finished: receipts it had claimed (a try
        # counted, never applied) and outbox rows under its lease.
        stranded = (
            WebhookReceipt.objects.filter(
                status=WebhookReceipt.Status.RECEIVED, attempts__gte=1
            ).count(),
            PendingPush.objects.filter(claimed_until__gt=timezone.now()).count(),
        )
        order_ids = [future.result() for future in placed]
    assert len(set(order_ids)) == ORDERS
    assert sum(stranded) > 0, "the kill found the worker idle: it proves nothing"
    own_stack.start_worker("killed-second")

    def settled() -> bool:
        own_stack.sweep()
        return (
            shown() == [200 - ORDERS] * 2
            and not WebhookReceipt.objects.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
            and not PendingPush.objects.exists()
        )

    wait_until(
        settled,
        timeout_s=90,
        describe=lambda: str(
            {
                "shown": shown(),
                "receipts": list(
                    WebhookReceipt.objects.exclude(
                        status=WebhookReceipt.Status.PROCESSED
                    ).values_list("status", "attempts", "error")
                ),
                "pending": list(PendingPush.objects.values("claimed_until", "attempts")),
                "stranded": stranded,
            }
        ),
    )
    commits = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert commits.count() == ORDERS  # each order once, none twice
    assert commits.aggregate(units=Sum("delta_committed"))["units"] == ORDERS
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.on_hand, level.committed) == (200, ORDERS)
    assert not DeadLetter.objects.filter(channel__in=shops).exists()
    assert WebhookReceipt.objects.filter(channel=selling).count() == ORDERS
