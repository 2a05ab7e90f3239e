"""Per-tenant state (a shop, a seller account) and the registry of a simulator's tenants.

Each tenant has its own lock: calls for different shops never wait on each other. The lock
is never held while the simulator delivers a webhook or sleeps for a fault.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from channels.simulators.harness.emitter import Delivery, EmitterSettings
from channels.simulators.harness.errors import ControlError
from channels.simulators.harness.faults import FaultPlan
from channels.simulators.harness.records import ReadLag, SequencedLog


class Tenant:
    """What every platform's tenant carries; a platform subclasses it with its own state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        # False once the tenant is replaced or the simulator reset: its timers stop.
        self.alive = True
        self.faults = FaultPlan()
        self.requests = SequencedLog()
        self.deliveries: dict[str, Delivery] = {}
        self.emitter = EmitterSettings()
        self.held: list[tuple[Delivery, int]] = []
        self.subscription_removed = False
        self.read_lag = ReadLag()

    def harness_state(self) -> dict[str, Any]:
        """The harness's part of the tenant's state (callers hold the lock)."""
        return {
            "faults": self.faults.as_json(),
            "emitter": self.emitter.as_json() | {"held": len(self.held)},
            "read_lag_s": self.read_lag.lag_s,
            "subscription_removed": self.subscription_removed,
        }


T = TypeVar("T", bound=Tenant)


class TenantRegistry(Generic[T]):
    """Tenants by name. ``kind`` names one in error messages ("shop", "seller")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._tenants: dict[str, T] = {}

    def get(self, name: str) -> T | None:
        return self._tenants.get(name)

    def require(self, name: str) -> T:
        tenant = self._tenants.get(name)
        if tenant is None:
            raise ControlError(404, f"No {self.kind} {name!r}.")
        return tenant

    def put(self, tenant: T) -> None:
        """Add, replacing (and retiring) a tenant of the same name."""
        with self._lock:
            old = self._tenants.get(tenant.name)
            self._tenants[tenant.name] = tenant
        if old is not None:
            old.alive = False

    def clear(self) -> None:
        with self._lock:
            old, self._tenants = list(self._tenants.values()), {}
        for tenant in old:
            tenant.alive = False

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._tenants.values()))

    def names(self) -> list[str]:
        return list(self._tenants)

    def find(self, predicate: Callable[[T], bool]) -> T | None:
        return next((t for t in self if predicate(t)), None)
