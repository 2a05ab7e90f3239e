"""The shared simulator harness, in process: clock, faults, emitter, logs, control API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from channels.simulators.harness import (
    Clock,
    ControlError,
    Delivery,
    Emitter,
    FaultPlan,
    ReadLag,
    RetryPolicy,
    Scheduler,
    SequencedLog,
    SimulatorServer,
    Tenant,
)
from channels.simulators.shopify import ShopifySimulator


def wait_until(predicate: Any, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


# -- Clock and scheduler ------------------------------------------------------------------------


def test_clock_runs_in_real_time_until_frozen_and_only_moves_forward():
    clock = Clock()
    assert abs(clock.time() - time.time()) < 0.1
    clock.freeze()
    frozen = clock.time()
    time.sleep(0.02)
    assert clock.time() == frozen
    clock.advance(3600)
    assert clock.time() == frozen + 3600
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.resume()
    assert clock.time() >= frozen + 3600
    clock.reset()
    assert abs(clock.time() - time.time()) < 0.1


def test_scheduler_fires_on_a_frozen_clock_only_when_advanced():
    clock = Clock()
    clock.freeze()
    scheduler = Scheduler(clock, workers=2)
    fired = threading.Event()
    try:
        scheduler.call_later(4 * 3600, fired.set)
        assert not fired.wait(0.1)
        clock.advance(4 * 3600 - 1)
        assert not fired.wait(0.1)
        clock.advance(1)
        assert fired.wait(2)
    finally:
        scheduler.stop()


# -- Faults -------------------------------------------------------------------------------------


def test_fault_counts_are_consumed_one_call_at_a_time():
    plan = FaultPlan()
    plan.update({"fail_next": 1, "fail_status": 502, "reset_next": 1, "timeout_next": 1})
    first, second, third = (plan.draw(["api"]) for _ in range(3))
    # One answering kind per call, in a fixed order: reset, then fail, then timeout.
    assert (first.reset, second.fail_status, third.timeout_s) == (True, 502, 10.0)
    assert [f.name for f in (first, second, third)] == ["reset", "fail", "timeout"]
    assert plan.draw(["api"]).name is None


def test_an_endpoints_own_faults_come_before_the_shared_ones():
    plan = FaultPlan()
    plan.update({"endpoint": "api:write", "throttle_next": 1})
    plan.update({"expired_token_next": 1})
    assert plan.draw(["api:read", "api"]).expired_token
    assert plan.draw(["api:read", "api"]).name is None
    assert plan.draw(["api:write", "api"]).throttle
    assert plan.as_json()["endpoints"]["api:write"]["throttle_next"] == 0


def test_drop_is_taken_only_by_writes_and_rates_roll_the_dice():
    plan = FaultPlan()
    plan.update({"drop_next": 1, "fail_rate": 1.0})
    assert plan.draw(["api"]).fail_status == 503  # rate 1: every call
    assert plan.take_drop(["api"]) is True
    assert plan.take_drop(["api"]) is False
    plan.update({"reset": True})
    assert plan.draw(["api"]).name is None


def test_bad_fault_settings_are_refused():
    plan = FaultPlan()
    for body in ({"fail_nxt": 1}, {"fail_rate": 2}, {"fail_status": 404}, {"fail_body": 1}):
        with pytest.raises(ControlError):
            plan.update(body)


def test_latency_is_the_largest_that_applies():
    plan = FaultPlan()
    plan.update({"latency_ms": 20})
    plan.update({"endpoint": "slow", "latency_ms": 300})
    assert plan.draw(["slow"]).latency_s == 0.3
    assert plan.draw(["fast"]).latency_s == 0.02


# -- Logs and read lag --------------------------------------------------------------------------


def test_sequenced_log_reads_since_a_sequence_and_drops_the_oldest():
    log = SequencedLog(limit=3)
    for n in range(5):
        log.append({"n": n})
    assert [e["seq"] for e in log.since()] == [3, 4, 5]
    assert [e["n"] for e in log.since(4)] == [4]
    # Copies: a reader cannot change the log.
    log.since()[0]["n"] = 99
    assert log.since()[0]["n"] == 2


def test_read_lag_shows_the_old_value_until_the_lag_has_passed():
    lag = ReadLag(lag_s=10)
    lag.before_write("k", 5, now=100.0)  # 5 -> 7 at t=100
    lag.before_write("k", 7, now=104.0)  # 7 -> 9 at t=104
    assert lag.visible("k", 9, now=105.0) == 5
    assert lag.visible("k", 9, now=111.0) == 7
    assert lag.visible("k", 9, now=115.0) == 9
    assert ReadLag(lag_s=0).visible("k", 9, now=0.0) == 9


# -- Emitter ------------------------------------------------------------------------------------


class Receiver:
    """A local endpoint recording deliveries; answers the statuses it is given, then 200."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.bodies.append((self.headers["X-Id"], body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def ids(self) -> list[str]:
        with self.lock:
            return [delivery_id for delivery_id, _ in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def emitter() -> Iterator[Emitter]:
    clock = Clock()
    scheduler = Scheduler(clock, workers=4)
    yield Emitter(scheduler)
    scheduler.stop()


def delivery(url: str, number: int) -> Delivery:
    return Delivery(
        webhook_id=f"d-{number}",
        topic="test",
        url=url,
        headers={"X-Id": f"d-{number}", "Content-Type": "application/json"},
        body=json.dumps({"n": number}).encode(),
        created_at=0.0,
    )


POLICY = RetryPolicy(retries=3, base_s=60, remove_subscription_when_exhausted=True)


def test_duplicates_carry_the_same_id_and_body(emitter, receiver):
    tenant = Tenant("t")
    tenant.emitter.update({"duplicate_next": 1})
    assert emitter.emit(tenant, delivery(receiver.url, 1), POLICY, duplicates=1) == 200
    assert receiver.ids() == ["d-1", "d-1", "d-1"]
    assert len({body for _, body in receiver.bodies}) == 1
    assert len(tenant.deliveries["d-1"].attempts) == 3


def test_held_deliveries_are_released_newest_first(emitter, receiver):
    tenant = Tenant("t")
    tenant.emitter.update({"hold_next": 3})
    for number in (1, 2, 3):
        assert emitter.emit(tenant, delivery(receiver.url, number), POLICY) is None
    wait_until(lambda: len(receiver.ids()) == 3)
    assert receiver.ids() == ["d-3", "d-2", "d-1"]


def test_a_dropped_delivery_is_stored_not_sent_and_can_be_redelivered(emitter, receiver):
    tenant = Tenant("t")
    tenant.emitter.update({"drop_next": 1})
    dropped = delivery(receiver.url, 1)
    assert emitter.emit(tenant, dropped, POLICY) is None
    assert emitter.emit(tenant, delivery(receiver.url, 2), POLICY) == 200
    assert receiver.ids() == ["d-2"]
    assert tenant.deliveries["d-1"].state == "dropped"
    assert emitter.redeliver(tenant, dropped, POLICY) == 200
    assert receiver.ids() == ["d-2", "d-1"]


def test_delays_and_jitter_send_later_from_the_pool(emitter, receiver):
    tenant = Tenant("t")
    tenant.emitter.update({"delay_s": 0.2})
    started = time.monotonic()
    assert emitter.emit(tenant, delivery(receiver.url, 1), POLICY) is None
    wait_until(lambda: receiver.ids() == ["d-1"])
    assert time.monotonic() - started >= 0.2


def test_retries_follow_the_policy_on_the_clock_then_remove_the_subscription(emitter, receiver):
    tenant = Tenant("t")
    clock = emitter.clock
    clock.freeze()
    receiver.statuses = [500] * 10
    assert emitter.emit(tenant, delivery(receiver.url, 1), POLICY) == 500
    for expected, wait_s in ((2, 60), (3, 120), (4, 240)):
        time.sleep(0.05)
        assert len(receiver.ids()) == expected - 1  # nothing before the clock moves
        clock.advance(wait_s)
        wait_until(lambda n=expected: len(receiver.ids()) == n)
    wait_until(lambda: tenant.subscription_removed)
    assert tenant.deliveries["d-1"].state == "failed"
    assert [a["status"] for a in tenant.deliveries["d-1"].attempts] == [500] * 4
    assert emitter.emit(tenant, delivery(receiver.url, 2), POLICY) is None  # unsubscribed


def test_a_success_stops_the_retries(emitter, receiver):
    tenant = Tenant("t")
    emitter.clock.freeze()
    receiver.statuses = [503]
    assert emitter.emit(tenant, delivery(receiver.url, 1), POLICY) == 503
    emitter.clock.advance(60)
    wait_until(lambda: tenant.deliveries["d-1"].state == "delivered")
    emitter.clock.advance(10_000)
    time.sleep(0.05)
    assert receiver.ids() == ["d-1", "d-1"]


# -- Server and control API ---------------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[str]:
    server = SimulatorServer(ShopifySimulator())
    server.start_in_thread()
    yield server.url
    server.shutdown()
    server.server_close()


def shop(url: str, name: str = "s") -> str:
    requests.post(f"{url}/_sim/shops", json={"shop": name, "access_token": "t"}, timeout=5)
    requests.post(
        f"{url}/_sim/shops/{name}/items",
        json={"items": [{"inventory_item_id": 1, "variant_id": 2, "available": 3}]},
        timeout=5,
    )
    return f"{url}/shops/{name}/admin/api/2026-01/graphql.json"


def call(endpoint: str, timeout_s: float = 5) -> requests.Response:
    return requests.post(
        endpoint,
        json={"query": '{ inventoryItem(id: "gid://shopify/InventoryItem/1") { sku } }'},
        headers={"X-Shopify-Access-Token": "t"},
        timeout=timeout_s,
    )


def test_reset_fault_resets_the_connection(simulator):
    endpoint = shop(simulator)
    requests.post(f"{simulator}/_sim/shops/s/faults", json={"reset_next": 1}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        call(endpoint)
    assert call(endpoint).status_code == 200


def test_expired_token_and_bodiless_5xx_use_the_platforms_answers(simulator):
    endpoint = shop(simulator)
    requests.post(
        f"{simulator}/_sim/shops/s/faults",
        json={"expired_token_next": 1, "fail_next": 1, "fail_body": False},
        timeout=5,
    )
    expired = call(endpoint)
    assert expired.status_code == 401
    assert "Invalid API key or access token" in expired.json()["errors"]
    failed = call(endpoint)
    assert (failed.status_code, failed.content) == (503, b"")


def test_timeout_without_the_write_applies_nothing(simulator):
    endpoint = shop(simulator)
    requests.post(
        f"{simulator}/_sim/shops/s/faults",
        json={"timeout_next": 1, "timeout_s": 0.5, "timeout_applied": False},
        timeout=5,
    )
    mutation = (
        'mutation { inventorySetQuantities(input: {name: "available", reason: "correction", '
        'quantities: [{inventoryItemId: "gid://shopify/InventoryItem/1", locationId: '
        '"gid://shopify/Location/1", quantity: 9, changeFromQuantity: null}]}) '
        "{ userErrors { code } } }"
    )
    with pytest.raises(requests.Timeout):
        requests.post(
            endpoint,
            json={"query": mutation},
            headers={"X-Shopify-Access-Token": "t"},
            timeout=0.2,
        )
    items = requests.get(f"{simulator}/_sim/shops/s/items", timeout=5).json()["items"]
    assert items[0]["available"] == 3
    [logged] = requests.get(f"{simulator}/_sim/shops/s/requests", timeout=5).json()["requests"]
    assert logged["fault"] == "timeout"


def test_control_api_clock_and_overview(simulator):
    shop(simulator)
    overview = requests.get(f"{simulator}/_sim/", timeout=5).json()
    assert overview["platform"] == "Shopify" and overview["shops"] == ["s"]
    moved = requests.post(f"{simulator}/_sim/clock", json={"advance_s": 3600}, timeout=5).json()
    assert moved["offset_s"] >= 3599
    assert requests.post(f"{simulator}/_sim/reset", timeout=5).json() == {"ok": True}
    assert requests.get(f"{simulator}/_sim/clock", timeout=5).json()["offset_s"] < 1
    assert requests.get(f"{simulator}/_sim/shops/s", timeout=5).status_code == 404


def test_the_command_starts_every_simulator_named_and_says_where():
    import subprocess
    import sys

    from tests.channels.conftest import PROJECT_DIR

    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulators", "--shopify", "0"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("Shopify simulator listening on http://127.0.0.1:")
        assert process.stdout.readline().strip() == "Simulators ready"
        url = first.rsplit(" ", 1)[-1]
        assert requests.get(f"{url}/_sim/", timeout=5).json()["platform"] == "Shopify"
    finally:
        process.terminate()
        process.wait(timeout=10)
