"""``make chaos``: the slow fault scenarios (RELIABILITY §6.2), each with real processes,
bounded in time, ending with the invariants I1-I6 (``checker``) and one PASS/FAIL line
with its figures (also kept in ``.data/chaos/results.txt``).

Sizes: ``CHAOS_ORDERS`` orders (default 400) at ``CHAOS_RATE`` per second (default 10)
over ``CHAOS_SKUS`` SKUs (default 40) on two shops, one worker of each kind; F1 at full
size sells ``CHAOS_F1_ORDERS`` orders (default 1 000) over ``CHAOS_F1_SKUS`` SKUs
(default 200) on four shops, two workers of each kind. The fast versions of these faults
run in ``make test`` (tests/channels/e2e, tests/channels/test_push_poison.py,
tests/reliability/test_fast_faults.py).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections

from accounts import services as token_services
from channels.models import DeadLetter, PushAttempt, WebhookReceipt
from channels.pipeline import ingest
from nventory import fault_injection, permissions
from tests import factories
from tests.channels.e2e.conftest import REPO_ROOT, wait_until
from tests.reliability import checker
from tests.reliability.scenario import (
    Fault,
    build_catalog,
    converge,
    place_orders,
    report,
    schedule_sweeps,
)
from tests.reliability.stack import APPLICATION_NAME, LOG_DIR, PostgresServer, Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ORDERS = int(os.environ.get("CHAOS_ORDERS", "400"))
RATE_PER_S = float(os.environ.get("CHAOS_RATE", "10"))
SKUS = int(os.environ.get("CHAOS_SKUS", "40"))
UNITS = 1000
# Every scenario must have converged this long after its last fault cleared.
CONVERGE_WITHIN_S = 90.0


@pytest.fixture
def stack(request: Any, transactional_db: Any) -> Iterator[Stack]:
    made = Stack(request.node.name.removeprefix("test_"))
    schedule_sweeps()
    try:
        yield made
    finally:
        made.stop()


def start_system(
    stack: Stack,
    simulator: Any,
    *,
    beat: bool = True,
    shops: int = 2,
    skus: int = SKUS,
    workers_per_kind: int = 1,
    withheld: frozenset[tuple[int, int]] = frozenset(),
) -> Any:
    """Web first (the shops' webhooks point at it), then the catalog, then the workers
    (a push worker listens to the channels' queues there are when it starts): ingest-1,
    push-1, ingest-2, push-2...; ``withheld`` as ``build_catalog`` takes it."""
    stack.start_web()
    catalog = build_catalog(
        simulator, stack, shops=shops, skus=skus, units=UNITS, withheld=withheld
    )
    for index in range(1, workers_per_kind + 1):
        stack.start_worker("ingest", index=index)
        stack.start_worker("push", index=index)
    if beat:
        stack.start_beat()
    return catalog


def finish(
    scenario: str,
    burst: checker.Burst,
    *,
    cleared_at: float,
    stack: Stack,
    figures_once_converged: Callable[[], dict[str, Any]] = dict,
    **figures: Any,
) -> checker.Verdict:
    converge_s = converge(burst, since=cleared_at, timeout_s=CONVERGE_WITHIN_S)
    verdict = checker.check(burst, converge_s=converge_s)
    checker.keep_deliveries(burst, LOG_DIR / scenario.split()[0] / "deliveries.json")
    verdict.figures.update(figures, **figures_once_converged(), worker_restarts=stack.restarts)
    if converge_s != converge_s:  # nan: never settled
        verdict.failures.append(f"not converged within {CONVERGE_WITHIN_S:.0f} s")
    if not verdict.passed:
        checker.keep_requests(burst, LOG_DIR / scenario.split()[0] / "requests.json")
    report(scenario, verdict)
    return verdict


def test_redis_paused_mid_burst(stack, shopify_simulator):
    """F2 (paused): Redis stopped with SIGSTOP for 20 s in a burst of webhooks. Every
    webhook is acknowledged (p99 under 1 s), stored, and applied once Redis resumes."""
    catalog = start_system(stack, shopify_simulator)

    def pause(fault: Fault) -> None:
        stack.redis.pause()
        time.sleep(20)
        stack.redis.resume()
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=pause)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish("F2p redis-paused-20s", burst, cleared_at=fault.cleared_at, stack=stack)
    assert verdict.passed, verdict.failures
    assert verdict.figures["ack_p99_ms"] < 1000


def test_poison_listing_answered_with_garbage(stack, shopify_simulator):
    """F10: one shop answers one listing with garbage through the burst: that listing is
    dead-lettered after its tries, every other listing converges."""
    catalog = start_system(stack, shopify_simulator)
    poisoned_shop = catalog.channels[0]
    poison_sku = catalog.skus[0]
    poison_item = catalog.variants[(poisoned_shop.slug, poison_sku.pk)] - 1_000_000
    shopify_simulator.update_shop(poisoned_shop.slug, garbage_item_ids=[poison_item])
    started = time.monotonic()
    burst = place_orders(shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S)
    burst.expected_dead_listing_ids = frozenset({catalog.listing(poisoned_shop, poison_sku).pk})
    verdict = finish(
        "F10 poison-item",
        burst,
        cleared_at=time.monotonic(),
        stack=stack,
        burst_s=round(time.monotonic() - started, 1),
    )
    assert verdict.passed, verdict.failures


def test_permanent_refusal_of_one_listing(stack, shopify_simulator):
    """F6: one shop does not have the item one listing names, so it refuses every write of
    it (``INVALID_INVENTORY_ITEM``) through a burst. Each refused push is a dead letter at
    once, sent once and never again, with what was sent and what the shop answered; every
    other listing converges. Then the item is created on the shop and the dead letters
    replayed over the API: the listing converges too. Neither the shop's access token nor
    its webhook secret is in any log of the stack."""
    catalog = start_system(stack, shopify_simulator, withheld=frozenset({(0, 0)}))
    shop, sku = catalog.channels[0], catalog.skus[0]
    refused = catalog.listing(shop, sku)
    refused_gid = f"gid://shopify/InventoryItem/{refused.external_id}"
    started = time.monotonic()
    burst = place_orders(shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S)
    burst.expected_dead_listing_ids = frozenset({refused.pk})
    burst_s = round(time.monotonic() - started, 1)
    # Every other listing converges while the refused one waits for its fix.
    others_converge_s = converge(burst, since=time.monotonic(), timeout_s=CONVERGE_WITHIN_S)
    assert others_converge_s == others_converge_s, checker.check(burst).failures

    letters = list(DeadLetter.objects.filter(listing=refused).order_by("pk"))
    sent = [
        json.loads(request["body"])["variables"]["input"]["quantities"]
        for request in shopify_simulator.requests(shop.slug)
        if request["method"] == "POST" and refused_gid in request["body"]
    ]
    written = [
        q["quantity"]
        for quantities in sent
        for q in quantities
        if q["inventoryItemId"] == refused_gid
    ]
    tries = list(PushAttempt.objects.filter(listing=refused).order_by("pk"))
    # Refused for good: one call and one try per push, its dead letter at once, holding the
    # figure sent and the shop's answer.
    assert letters and len(written) == len(letters) == len(tries), (written, letters, tries)
    assert [letter.target_quantity for letter in letters] == written
    for letter in letters:
        [attempt] = letter.attempts
        assert attempt["error"].startswith("INVALID_INVENTORY_ITEM"), attempt
    assert {(t.outcome, t.attempt_number) for t in tries} == {(PushAttempt.Outcome.REJECTED, 1)}

    # The fix: the shop gets its item (not stocked yet); then the operator replays.
    item = catalog.withheld[(shop.slug, sku.pk)]
    shopify_simulator.add_items(shop.slug, [{**item, "available": 0}])
    operator = factories.make_user(permissions.HANDLE_DEAD_LETTERS)
    token = token_services.issue_token(user=operator, expires_in=None).key
    answer = requests.post(
        f"{stack.web_url}/api/v1/dead-letters/replay/",
        json={"ids": [letter.pk for letter in letters]},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    replayed = {letter["id"] for letter in answer.json()["dead_letters"]}
    assert replayed == {letter.pk for letter in letters}, answer.text
    replayed_at = time.monotonic()

    secrets = [shop.credentials["access_token"], shop.webhook_secret]
    leaking: list[str] = []

    def logs_checked() -> dict[str, Any]:
        leaking.extend(_logs_holding(stack, secrets))
        return {"secrets_in_logs": len(leaking)}

    verdict = finish(
        "F6 permanent-refusal-replayed",
        burst,
        cleared_at=replayed_at,
        stack=stack,
        burst_s=burst_s,
        others_converge_s=round(others_converge_s, 1),
        refused_pushes=len(letters),
        figures_once_converged=logs_checked,
    )
    assert verdict.passed, verdict.failures
    assert not leaking, f"a secret of the shop is in {leaking}"


def _logs_holding(stack: Stack, secrets: list[str]) -> list[str]:
    """The stack's log files holding any of ``secrets``."""
    return sorted(
        log.name
        for log in stack.log_dir.glob("*.log")
        if any(secret.encode() in log.read_bytes() for secret in secrets)
    )


def test_workers_killed_repeatedly_mid_burst(stack, shopify_simulator):
    """F1: kill -9 of each worker kind in turn, every 5 s, three times each, each started
    again at once: nothing lost, nothing twice, no dead letter."""
    catalog = start_system(stack, shopify_simulator)
    for channel in catalog.channels:  # pushes in flight most of the time
        shopify_simulator.faults(channel.slug, latency_ms=200)

    def kill_in_turn(fault: Fault) -> None:
        kills = 0
        for kind in ("push", "ingest") * 3:
            stack.kill(f"{kind}-1")
            kills += 1
            stack.start_worker(kind)
            time.sleep(5)
        fault.figures["kills"] = kills
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=3, inject=kill_in_turn)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish(
        "F1 kill-9-workers", burst, cleared_at=fault.cleared_at, stack=stack, **fault.figures
    )
    assert verdict.passed, verdict.failures


# F1 at the size of the plan: orders over SKUs on four shops, two workers of each kind.
FULL_ORDERS = int(os.environ.get("CHAOS_F1_ORDERS", "1000"))
FULL_SKUS = int(os.environ.get("CHAOS_F1_SKUS", "200"))
FULL_SHOPS = 4
# The kills in turn, each worker started again 5 s after its kill (the other of its kind
# carries on meanwhile); three of each kind.
FULL_SIZE_KILLS = ("push-1", "ingest-2", "push-2", "ingest-1", "push-1", "ingest-2")
KILL_EVERY_S = 5.0
FULL_SIZE_CONVERGE_WITHIN_S = 60.0


def test_workers_killed_repeatedly_at_full_size(stack, shopify_simulator):
    """F1 at the plan's size: 1 000 orders over 200 SKUs on four shops, two ingest and two
    push workers; every 5 s one of them is killed (-9) and the one killed before started
    again, six kills. Nothing lost, nothing twice, no dead letter, converged within 60 s
    of the later of the last restart and the last order. ``redelivered``: pushes a kill
    interrupted, sent again by another worker."""
    catalog = start_system(
        stack, shopify_simulator, shops=FULL_SHOPS, skus=FULL_SKUS, workers_per_kind=2
    )
    for channel in catalog.channels:  # pushes in flight most of the time
        shopify_simulator.faults(channel.slug, latency_ms=200)
    started = time.monotonic()

    def kill_in_turn(fault: Fault) -> None:
        for victim in FULL_SIZE_KILLS:
            stack.kill(victim)
            time.sleep(KILL_EVERY_S)
            kind, index = victim.split("-")
            stack.start_worker(kind, index=int(index))
        fault.figures["kills"] = len(FULL_SIZE_KILLS)
        fault.cleared_at = time.monotonic()
        fault.figures["last_restart_s"] = round(fault.cleared_at - started, 1)

    fault = Fault(at_s=5, inject=kill_in_turn)
    burst = place_orders(
        shopify_simulator, catalog, orders=FULL_ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    burst_over = time.monotonic()
    verdict = finish(
        "F1full kill-9-workers-4-shops-2-each",
        burst,
        cleared_at=max(fault.cleared_at, burst_over),
        stack=stack,
        burst_s=round(burst_over - started, 1),
        **fault.figures,
        figures_once_converged=lambda: {
            "pushes_applied": _pushes_applied(catalog.channels),
            "redelivered": _pushes_redelivered(catalog.channels),
        },
    )
    assert verdict.passed, verdict.failures
    assert verdict.figures["converge_s"] <= FULL_SIZE_CONVERGE_WITHIN_S, verdict.figures


def _pushes_applied(channels: Any) -> int:
    return PushAttempt.objects.filter(
        channel__in=channels, outcome=PushAttempt.Outcome.APPLIED
    ).count()


def _pushes_redelivered(channels: Any) -> int:
    """Pushes a killed worker had claimed and counted a try of, then another worker sent:
    a try recorded whose try before it never was (a try is recorded once the channel
    answered it, and counted just before it is sent)."""
    recorded = set(
        PushAttempt.objects.filter(channel__in=channels).values_list(
            "listing_id", "change_at", "attempt_number"
        )
    )
    return sum(
        1
        for listing_id, change_at, number in recorded
        if number > 1 and (listing_id, change_at, number - 1) not in recorded
    )


def test_redis_stopped_and_restarted_empty_mid_burst(stack, shopify_simulator):
    """F2 (B): Redis stopped for 20 s, then started again empty: webhooks stay 2xx, and
    the sweeps find everything Redis forgot (it is never the record)."""
    catalog = start_system(stack, shopify_simulator)

    def restart_empty(fault: Fault) -> None:
        stack.redis.stop()
        time.sleep(20)
        stack.redis.start()
        stack.redis.flushall()
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=restart_empty)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish("F2b redis-restarted-empty", burst, cleared_at=fault.cleared_at, stack=stack)
    assert verdict.passed, verdict.failures


# How long F5's shop is down (CHAOS_F5_S, seconds).
CHANNEL_DOWN_FOR_S = float(os.environ.get("CHAOS_F5_S", "60"))


def test_a_channel_down_for_a_minute_then_back(stack, shopify_simulator):
    """F5: one shop answers 503 to every call for 60 s (CHAOS_F5_S): no dead letter (the
    breaker holds its pushes), it catches up once back; the other shop is unaffected."""
    catalog = start_system(stack, shopify_simulator)
    down = catalog.channels[1]

    def outage(fault: Fault) -> None:
        shopify_simulator.faults(down.slug, fail_rate=1.0, fail_status=503)
        time.sleep(CHANNEL_DOWN_FOR_S)
        shopify_simulator.faults(down.slug, fail_rate=0.0)
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=3, inject=outage)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish(
        f"F5 channel-down-{CHANNEL_DOWN_FOR_S:g}s", burst, cleared_at=fault.cleared_at, stack=stack
    )
    assert verdict.passed, verdict.failures


def test_duplicates_and_disorder_at_thirty_percent(stack, shopify_simulator):
    """F7: 30 % of deliveries sent twice, and every delivery held back by up to 2 s (so
    they arrive out of order): each order's effect exactly once."""
    catalog = start_system(stack, shopify_simulator)

    def disorder() -> None:
        for channel in catalog.channels:
            shopify_simulator.emitter(channel.slug, duplicate_rate=0.3, jitter_s=2.0)

    started = time.monotonic()
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, after_warmup=disorder
    )
    time.sleep(3)  # the last held-back deliveries
    verdict = finish(
        "F7 duplicates-reordered-30pct",
        burst,
        cleared_at=time.monotonic(),
        stack=stack,
        burst_s=round(time.monotonic() - started, 1),
    )
    assert verdict.passed, verdict.failures
    assert verdict.figures["duplicates_suppressed"] > 0


def test_beat_started_twice(stack, shopify_simulator):
    """F8: two beat processes on one schedule through the burst: every sweep runs twice
    as often, and nothing is applied or pushed twice."""
    catalog = start_system(stack, shopify_simulator)
    stack.start_beat(index=2)
    burst = place_orders(shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S)
    verdict = finish("F8 beat-twice", burst, cleared_at=time.monotonic(), stack=stack, beats=2)
    assert verdict.passed, verdict.failures


def test_the_broker_loses_messages(stack, shopify_simulator):
    """F12: the broker loses what is queued: every queue emptied twice mid-burst, 10 s
    apart, each time after the workers were held still (SIGSTOP) for 3 s so that tasks
    wait in them. The sweeps find the receipts and owed pushes again."""
    import redis

    catalog = start_system(stack, shopify_simulator)
    client: Any = redis.Redis.from_url(stack.redis.url)

    def empty_redis_queues() -> int:
        queues = [key for key in client.keys("*") if not key.startswith(b"_kombu")]
        lost = sum(int(client.llen(key)) for key in queues if client.type(key) == b"list")
        if queues:
            client.delete(*queues)
        return lost

    def lose_queued(fault: Fault) -> None:
        lost = 0
        for _ in range(2):
            # The workers keep up with the burst: held still for a moment, they leave
            # tasks waiting in the queues for the broker to lose.
            for worker in ("ingest-1", "push-1"):
                stack.pause(worker)
            time.sleep(3)
            if stack.broker_url.startswith("amqp"):
                lost += _purge_rabbitmq_queues(stack.broker_url)
            else:
                lost += empty_redis_queues()
            for worker in ("ingest-1", "push-1"):
                stack.resume(worker)
            time.sleep(10)
        fault.figures["messages_lost"] = lost
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=lose_queued)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish(
        "F12 broker-loses-messages",
        burst,
        cleared_at=fault.cleared_at,
        stack=stack,
        **fault.figures,
    )
    # Not asserted: how many tasks were waiting when a queue was emptied (0 or 1 so far:
    # a wake flag stands for every change while a run is going, docs/reliability.md).
    assert verdict.passed, verdict.failures


def test_a_worker_runs_with_the_configured_delivery_settings(stack):
    """F11: what a started worker actually uses (celery#7651, #9339: a configured
    visibility timeout that never reached the worker)."""
    from celery import Celery
    from django.conf import settings

    stack.start_worker("push")
    control = Celery(broker=stack.broker_url)
    answers = control.control.inspect(timeout=10).conf(with_defaults=True) or {}
    [conf] = answers.values()
    seen = {
        "acks_late": conf["task_acks_late"],
        "reject_on_worker_lost": conf["task_reject_on_worker_lost"],
        "prefetch_multiplier": conf["worker_prefetch_multiplier"],
    }
    wanted: dict[str, object] = {
        "acks_late": True,
        "reject_on_worker_lost": True,
        "prefetch_multiplier": 1,
    }
    if not stack.broker_url.startswith("amqp"):
        # RabbitMQ has none: it delivers again as soon as the consumer's connection closes.
        seen["visibility_timeout"] = conf["broker_transport_options"]["visibility_timeout"]
        wanted["visibility_timeout"] = settings.CELERY_VISIBILITY_TIMEOUT_S
    verdict = checker.Verdict(
        failures=[
            f"{name}: {seen[name]} != {wanted[name]}"
            for name in wanted
            if seen[name] != wanted[name]
        ],
        figures=seen,
    )
    report("F11 config-truth", verdict)
    assert verdict.passed, verdict.failures


# F3: how long connections are dropped, and how often.
TERMINATE_FOR_S = float(os.environ.get("CHAOS_F3_S", "30"))
TERMINATE_EVERY_S = 2.0


def test_database_connections_terminated_mid_burst(stack, shopify_simulator):
    """F3: every database connection of web, workers and beat terminated
    (pg_terminate_backend) every 2 s through the burst. No acknowledgement without its
    receipt stored; a webhook answered 5xx meanwhile is sent again by the shop and lands."""
    catalog = start_system(stack, shopify_simulator)

    def terminate_repeatedly(fault: Fault) -> None:
        fault.figures["window_from"] = time.time()
        terminated = 0
        until = time.monotonic() + TERMINATE_FOR_S
        try:
            while time.monotonic() < until:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        "  FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = %s",
                        [APPLICATION_NAME],
                    )
                    terminated += cursor.fetchone()[0]
                time.sleep(TERMINATE_EVERY_S)
        finally:
            connection.close()
        fault.figures["terminated"] = terminated
        fault.cleared_at = time.monotonic()
        # A request that had its connection dropped answers when it fails.
        fault.figures["window_to"] = time.time() + 5

    fault = Fault(at_s=3, inject=terminate_repeatedly)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    burst.database_fault_window = (
        fault.figures.pop("window_from"),
        fault.figures.pop("window_to"),
    )
    verdict = finish(
        "F3 db-connections-terminated",
        burst,
        cleared_at=fault.cleared_at,
        stack=stack,
        **fault.figures,
    )
    assert verdict.passed, verdict.failures
    assert fault.figures["terminated"] > 0


@pytest.fixture
def stack_on_own_postgres(
    request: Any, transactional_db: Any
) -> Iterator[tuple[Stack, PostgresServer]]:
    """A stack, and this test's own database connection, on a PostgreSQL server of the
    scenario's own (which it restarts), migrated afresh. The test database is given back
    before pytest-django empties it."""
    name = request.node.name.removeprefix("test_")
    server = PostgresServer(LOG_DIR / name)
    server.start()
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": server.url, "DEBUG": "true"},
        capture_output=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr.decode()[-2000:]
    default = connections["default"]
    test_database = dict(default.settings_dict)
    connections.close_all()
    default.settings_dict.update(HOST="127.0.0.1", PORT=server.port, NAME=server.DATABASE)
    ContentType.objects.clear_cache()
    made = Stack(name, DATABASE_URL=server.url)
    try:
        schedule_sweeps()
        yield made, server
    finally:
        made.stop()
        connections.close_all()
        default.settings_dict.clear()
        default.settings_dict.update(test_database)
        ContentType.objects.clear_cache()
        server.stop()


def test_postgres_restarted_mid_burst(stack_on_own_postgres, shopify_simulator):
    """F4: PostgreSQL restarted (``pg_ctl restart -m fast``) 5 s into the burst: web,
    workers and beat find it again by themselves, nothing acknowledged is lost."""
    stack, server = stack_on_own_postgres
    catalog = start_system(stack, shopify_simulator)

    def restart(fault: Fault) -> None:
        fault.figures["window_from"] = time.time()
        started = time.monotonic()
        server.restart_fast()
        fault.figures["restart_s"] = round(time.monotonic() - started, 1)
        fault.cleared_at = time.monotonic()
        fault.figures["window_to"] = time.time() + 5

    fault = Fault(at_s=5, inject=restart)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    # This thread's connection died with the server.
    connections.close_all()
    burst.database_fault_window = (
        fault.figures.pop("window_from"),
        fault.figures.pop("window_to"),
    )
    beat = stack.processes["beat-1"]
    verdict = finish(
        "F4 postgres-restarted", burst, cleared_at=fault.cleared_at, stack=stack, **fault.figures
    )
    if beat.poll() is not None:
        verdict.failures.append(f"beat exited ({beat.returncode}) after the restart")
    assert verdict.passed, verdict.failures


# F9: the push worker exits right after this many answered pushes of its own, this many
# times in the burst (each time started again by the stack's supervisor).
PUSHES_BEFORE_EXIT = 10
EXITS_AFTER_ANSWER = 3


def test_push_worker_killed_between_answer_and_record(stack, shopify_simulator):
    """F9: the push worker dies right after a channel answered a push, before the answer
    is recorded or the task acknowledged (a fault-injection point: no kill from outside
    lands there on purpose), three times in the burst and once more after it, alone, so
    that what it wrote is seen sent again unchanged. Sending it again is harmless
    (absolute quantities, compare-and-set) and every shop ends with the master's figure."""
    stack.set_env(fault_injection.ENV_VAR, f"push-exit-after-answer={PUSHES_BEFORE_EXIT}")
    catalog = start_system(stack, shopify_simulator)

    def exits_then_fixed(fault: Fault) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and stack.restarts < EXITS_AFTER_ANSWER:
            if stack.restarts >= EXITS_AFTER_ANSWER - 1:
                # The worker now running is the last one to carry the fault (set_env
                # waits for the supervisor's restart in progress).
                stack.set_env(fault_injection.ENV_VAR, None)
            time.sleep(0.2)
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=0, inject=exits_then_fixed)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    exits_in_burst = stack.exits.count(("push-1", fault_injection.EXIT_STATUS))
    converge(burst, since=fault.cleared_at, timeout_s=CONVERGE_WITHIN_S)

    # Alone: one order, nothing else moving, so the push sent again writes the same figure.
    stack.kill("push-1")
    stack.set_env(fault_injection.ENV_VAR, "push-exit-after-answer=1")
    stack.start_worker("push")
    stack.set_env(fault_injection.ENV_VAR, None)
    shop, sku = catalog.channels[0], catalog.skus[0]
    shopify_simulator.place_order(
        shop.slug, [{"variant_id": catalog.variants[(shop.slug, sku.pk)], "quantity": 1}]
    )
    burst.orders_placed += 1
    burst.ordered[sku.pk] += 1
    wait_until(
        lambda: stack.exits.count(("push-1", fault_injection.EXIT_STATUS)) > exits_in_burst,
        timeout_s=CONVERGE_WITHIN_S,
    )
    cleared_at = time.monotonic()
    fatal = _writes_of_the_last_exit(stack)
    verdict = finish(
        "F9 killed-after-push-answer",
        burst,
        cleared_at=cleared_at,
        stack=stack,
        exits_after_answer=stack.exits.count(("push-1", fault_injection.EXIT_STATUS)),
        # Once converged: the claim of the push that died lapses first.
        figures_once_converged=lambda: {
            "sent_again": _written_after(shopify_simulator, catalog.channels, fatal)
        },
    )
    assert verdict.passed, verdict.failures
    assert verdict.figures["exits_after_answer"] == EXITS_AFTER_ANSWER + 1
    # What the last one wrote (item and figure) the shop received once more after it.
    assert fatal and verdict.figures["sent_again"] == len(fatal), (
        fatal,
        _writes_of(shopify_simulator, {(shop, item) for shop, item, _ in fatal}),
    )


def _writes_of_the_last_exit(stack: Stack) -> list[tuple[str, str, int]]:
    """(shop, item, figure) of the push answered last before the worker's last exit."""
    log = (stack.log_dir / "push-1.log").read_text(errors="replace")
    marker = "Fault injection: exiting after push answer "
    last = log[log.rindex(marker) + len(marker) :].splitlines()[0]
    return [
        (str(shop), str(item), int(figure))
        for shop, item, figure in ast.literal_eval(last.split(": ", 1)[1])
    ]


def _writes_of(simulator: Any, items: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every write of these (shop, item)s, in order: what a failure shows."""
    found = []
    for shop in {shop for shop, _ in items}:
        for request in simulator.requests(shop):
            if request["method"] != "POST" or "inventorySetQuantities" not in request["body"]:
                continue
            mutation = json.loads(request["body"]).get("variables", {}).get("input", {})
            for quantity in mutation.get("quantities", []):
                if (shop, quantity["inventoryItemId"].rsplit("/", 1)[-1]) in items:
                    found.append(
                        {"time": request["time"], "status": request["status"], **quantity}
                    )
    return found


def _written_after(simulator: Any, channels: Any, fatal: list[tuple[str, str, int]]) -> int:
    """How many of ``fatal``'s writes their shop received twice or more (the first time
    from the worker that died, then from the one after it)."""
    seen: Counter[tuple[str, str, int]] = Counter()
    for channel in channels:
        for request in simulator.requests(channel.slug):
            if request["method"] != "POST" or "inventorySetQuantities" not in request["body"]:
                continue
            mutation = json.loads(request["body"]).get("variables", {}).get("input", {})
            for quantity in mutation.get("quantities", []):
                item = quantity["inventoryItemId"].rsplit("/", 1)[-1]
                seen[(channel.slug, item, quantity["quantity"])] += 1
    return sum(1 for write in fatal if seen[write] >= 2)


def _purge_rabbitmq_queues(broker_url: str) -> int:
    """Every queue of the broker's virtual host emptied (messages a worker holds
    unacknowledged stay, as on Redis); how many messages went."""
    from kombu import Connection

    vhost = urlsplit(broker_url).path.lstrip("/") or "/"
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-p",
            unquote(vhost),
            "--quiet",
            "--no-table-headers",
            "name",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lost = 0
    with Connection(broker_url) as broker:
        channel: Any = broker.channel()
        for name in listed.stdout.split():
            # The workers' control and event queues are not tasks.
            if "pidbox" not in name and not name.startswith("celeryev"):
                lost += int(channel.queue_purge(name) or 0)
    return lost


def test_poison_receipt(stack, shopify_simulator):
    """A poison receipt: applying one order's webhook raises every time (a
    fault-injection point, standing for a bug). It ends failed after its tries while every
    other receipt is applied; once the fix is deployed (the ingest worker started again
    without the fault), the operator's reprocess over the API applies it, once."""
    stack.start_web()
    catalog = build_catalog(shopify_simulator, stack, shops=2, skus=SKUS + 1, units=UNITS)
    poison_sku = catalog.skus.pop()
    poison_shop = catalog.channels[0]
    stack.set_env(fault_injection.ENV_VAR, f'ingest-raise-on="{poison_sku.code}"')
    stack.start_worker("ingest")
    stack.start_worker("push")
    stack.start_beat()

    def poison_order(fault: Fault) -> None:
        variant = catalog.variants[(poison_shop.slug, poison_sku.pk)]
        shopify_simulator.place_order(poison_shop.slug, [{"variant_id": variant, "quantity": 1}])
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=10, inject=poison_order)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    [poison] = [
        receipt
        for receipt in WebhookReceipt.objects.filter(channel=poison_shop)
        if f'"{poison_sku.code}"'.encode() in bytes(receipt.body)
    ]

    def everything_else_applied() -> bool:
        time.sleep(0.5)
        poison.refresh_from_db(fields=["status", "attempts"])
        others = WebhookReceipt.objects.filter(
            channel__in=catalog.channels, topic__startswith="orders/"
        ).exclude(pk=poison.pk)
        return (
            poison.status == WebhookReceipt.Status.FAILED
            and poison.attempts == ingest.MAX_RECEIPT_ATTEMPTS
            and others.count() == burst.orders_placed
            and not others.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
        )

    # Its tries are spent by the receipt sweep, one every 30 s.
    wait_until(everything_else_applied, timeout_s=30 * ingest.MAX_RECEIPT_ATTEMPTS + 60)
    tries = poison.attempts

    stack.kill("ingest-1")
    stack.set_env(fault_injection.ENV_VAR, None)
    stack.start_worker("ingest")
    operator = factories.make_user(permissions.REPROCESS_RECEIPTS)
    token = token_services.issue_token(user=operator, expires_in=None).key
    answer = requests.post(
        f"{stack.web_url}/api/v1/webhook-receipts/{poison.pk}/reprocess/",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    replayed_at = time.monotonic()

    burst.orders_placed += 1
    burst.ordered[poison_sku.pk] += 1
    burst.stock[poison_sku.pk] = UNITS
    verdict = finish(
        "F13 poison-receipt",
        burst,
        cleared_at=replayed_at,
        stack=stack,
        poison_tries=tries,
    )
    assert verdict.passed, verdict.failures
