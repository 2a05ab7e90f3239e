"""Outbound events: webhook deliveries with the platform's retry policy and injected disorder.

A platform module builds each ``Delivery`` (payload, signed headers) and hands it to
``Emitter.emit``. The first attempt runs on the caller's thread by default, so the control
call that caused the event answers with its HTTP status (and a load generator feels the
receiver's pace, as the platform's delivery workers would). Failed attempts are retried on
the simulator's clock following the platform's ``RetryPolicy``; every retry carries the same
delivery id and payload, so the receiver has to deduplicate.

Per tenant, ``POST /_sim/<tenants>/<id>/emitter`` sets the disorder (``EmitterSettings``):
duplicates, dropped deliveries (stored, never sent, redeliverable), a fixed delay plus
random jitter (which reorders), and holding the next N deliveries to release them in
reverse order (a deterministic reordering).
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from channels.simulators.harness.errors import ControlError
from channels.simulators.harness.records import store_bounded

if TYPE_CHECKING:
    from channels.simulators.harness.clock import Scheduler
    from channels.simulators.harness.tenants import Tenant


@dataclass(frozen=True)
class RetryPolicy:
    """How the platform retries a delivery that was not answered with a 2xx in time."""

    retries: int
    base_s: float
    factor: float = 2.0
    connect_timeout_s: float = 1.0
    response_timeout_s: float = 5.0
    # The platform deletes the subscription once one delivery has failed every retry.
    remove_subscription_when_exhausted: bool = False

    def delay_s(self, retry: int) -> float:
        """Wait before retry number ``retry`` (0 is the first retry)."""
        return self.base_s * self.factor**retry


@dataclass
class Delivery:
    webhook_id: str
    topic: str
    # Retries go to the address set when the event fired.
    url: str
    headers: dict[str, str]
    body: bytes
    created_at: float
    # pending, delivered, retrying, failed (retries exhausted), dropped, held, not_sent
    state: str = "pending"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # For a platform whose every attempt is signed anew because the body counts the
    # attempts (eBay's ``publishAttemptCount``): headers and body of attempt number n.
    prepare: Callable[[int], tuple[dict[str, str], bytes]] | None = field(
        default=None, repr=False, compare=False
    )

    def as_json(self) -> dict[str, Any]:
        import json

        return {
            "webhook_id": self.webhook_id,
            "topic": self.topic,
            "url": self.url,
            "headers": self.headers,
            "payload": json.loads(self.body),
            "state": self.state,
            "created_at": self.created_at,
            "attempts": list(self.attempts),
        }


@dataclass
class EmitterSettings:
    duplicate_next: int = 0
    duplicate_rate: float = 0.0
    drop_next: int = 0
    drop_rate: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    hold_next: int = 0

    def update(self, values: Mapping[str, object]) -> None:
        known = {f.name: type(getattr(EmitterSettings(), f.name)) for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ControlError(400, f"Unknown emitter setting {name!r}.")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ControlError(400, f"Emitter setting {name!r} is a number >= 0.")
            if name.endswith("_rate") and value > 1:
                raise ControlError(400, f"Emitter setting {name!r} is a probability (0 to 1).")
            setattr(self, name, known[name](value))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _take(settings: EmitterSettings, kind: str) -> bool:
    left = getattr(settings, f"{kind}_next")
    if left > 0:
        setattr(settings, f"{kind}_next", left - 1)
        return True
    rate = getattr(settings, f"{kind}_rate")
    return bool(rate) and random.random() < rate


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


class Emitter:
    """Sends deliveries for every tenant of one simulator; retries run on its scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock

    def emit(
        self,
        tenant: Tenant,
        delivery: Delivery,
        policy: RetryPolicy,
        *,
        duplicates: int = 0,
        deliver: bool = True,
        wait: bool = True,
    ) -> int | None:
        """Store and send one delivery; the first attempt's status when it ran here, else None.

        ``wait=False`` sends from the pool instead (an event the caller need not wait for).
        """
        release: list[tuple[Delivery, int]] = []
        with tenant.lock:
            store_bounded(tenant.deliveries, delivery.webhook_id, delivery)
            if not deliver or not delivery.url or tenant.subscription_removed:
                delivery.state = "not_sent"
                return None
            settings = tenant.emitter
            if _take(settings, "drop"):
                delivery.state = "dropped"
                return None
            duplicates = max(0, duplicates) + (1 if _take(settings, "duplicate") else 0)
            delay_s = settings.delay_s
            if settings.jitter_s:
                delay_s += random.uniform(0, settings.jitter_s)
            if settings.hold_next > 0:
                settings.hold_next -= 1
                delivery.state = "held"
                tenant.held.append((delivery, duplicates))
                if settings.hold_next > 0:
                    return None
                release, tenant.held = tenant.held, []
        if release:
            self.release(tenant, policy, release)
            return None
        if delay_s > 0 or not wait:

            def send() -> None:
                self._send(tenant, delivery, policy, duplicates)

            self.scheduler.call_later(delay_s, send)
            return None
        return self._send(tenant, delivery, policy, duplicates)

    def release(
        self, tenant: Tenant, policy: RetryPolicy, held: list[tuple[Delivery, int]]
    ) -> None:
        """Send held deliveries newest first, one after the other, from the pool."""

        def send_all() -> None:
            for delivery, duplicates in reversed(held):
                self._send(tenant, delivery, policy, duplicates)

        self.scheduler.submit(send_all)

    def redeliver(self, tenant: Tenant, delivery: Delivery, policy: RetryPolicy) -> int | None:
        """One more attempt now, as the platform's "resend" does; no retries follow."""
        return self.attempt(tenant, delivery, policy)

    def _send(
        self, tenant: Tenant, delivery: Delivery, policy: RetryPolicy, duplicates: int
    ) -> int | None:
        status = self.attempt(tenant, delivery, policy)
        if not is_success(status) and policy.retries > 0:
            with tenant.lock:
                delivery.state = "retrying"
            self.scheduler.call_later(
                policy.delay_s(0), lambda: self._retry(tenant, delivery, policy, 0)
            )
        for _ in range(duplicates):
            self.attempt(tenant, delivery, policy)
        return status

    def _retry(self, tenant: Tenant, delivery: Delivery, policy: RetryPolicy, retry: int) -> None:
        # A replaced or dropped tenant takes its pending retries with it.
        if not tenant.alive:
            return
        if is_success(self.attempt(tenant, delivery, policy)):
            return
        if retry + 1 < policy.retries:
            self.scheduler.call_later(
                policy.delay_s(retry + 1), lambda: self._retry(tenant, delivery, policy, retry + 1)
            )
            return
        with tenant.lock:
            delivery.state = "failed"
            if policy.remove_subscription_when_exhausted:
                tenant.subscription_removed = True

    def attempt(self, tenant: Tenant, delivery: Delivery, policy: RetryPolicy) -> int | None:
        """POST the delivery as it is (or as ``prepare`` makes this attempt); the HTTP
        status, or None if nothing answered in time."""
        started = time.time()
        sent_at = self.clock.time()
        if delivery.prepare is not None:
            with tenant.lock:
                number = len(delivery.attempts) + 1
            delivery.headers, delivery.body = delivery.prepare(number)
        status, error = post(
            delivery.url,
            delivery.headers,
            delivery.body,
            connect_timeout_s=policy.connect_timeout_s,
            response_timeout_s=policy.response_timeout_s,
        )
        with tenant.lock:
            delivery.attempts.append(
                {
                    "time": sent_at,
                    "status": status,
                    "error": error,
                    "duration_ms": round((time.time() - started) * 1000, 1),
                }
            )
            if is_success(status):
                delivery.state = "delivered"
        return status


_kept = threading.local()
Address = tuple[str, str, int | None]


def post(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    connect_timeout_s: float,
    response_timeout_s: float,
) -> tuple[int | None, str]:
    """One POST; ``(status, "")`` or ``(None, error)``.

    Over a kept-alive connection of this thread when there is one, as a platform's delivery
    workers do; a kept connection the receiver has closed meanwhile is replaced once.
    """
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    error = ""
    for reuse in (True, False):
        was_kept = False
        try:
            connection, was_kept = _connection(
                parts, fresh=not reuse, connect_s=connect_timeout_s, read_s=response_timeout_s
            )
            connection.request("POST", path, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read()
            if response.will_close:
                _drop_connection(parts)
            return response.status, ""
        except (OSError, http.client.HTTPException) as exc:
            _drop_connection(parts)
            error = f"{type(exc).__name__}: {exc}"
            if not was_kept:
                break
    return None, error


def _connection(
    parts: SplitResult, *, fresh: bool, connect_s: float, read_s: float
) -> tuple[http.client.HTTPConnection, bool]:
    kept: dict[Address, http.client.HTTPConnection] = getattr(_kept, "by_address", None) or {}
    _kept.by_address = kept
    address = (parts.scheme, parts.hostname or "", parts.port)
    connection = None if fresh else kept.get(address)
    if connection is not None:
        return connection, True
    connection_class: Callable[..., http.client.HTTPConnection] = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(address[1], parts.port, timeout=connect_s)
    connection.connect()
    if connection.sock is not None:
        connection.sock.settimeout(read_s)
    kept[address] = connection
    return connection, False


def _drop_connection(parts: SplitResult) -> None:
    kept = getattr(_kept, "by_address", {})
    connection = kept.pop((parts.scheme, parts.hostname or "", parts.port), None)
    if connection is not None:
        connection.close()
