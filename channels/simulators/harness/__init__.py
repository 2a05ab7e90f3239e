"""The machinery every platform simulator reuses (``CHANNEL_APIS.md`` §6, cross-platform list).

- ``clock``: a clock that runs in real time until the control API moves it, and a scheduler
  on it (webhook retries, delays, asynchronous processing);
- ``tenants``: per-tenant state (a shop, a seller account) with its own lock;
- ``faults``: fault injection per endpoint (5xx, reset, timeout with or without the write,
  throttle, expired token, accepted but not applied);
- ``emitter``: webhook deliveries with the platform's retry policy, duplicates, delays,
  reordering and deliberate drops;
- ``records``: bounded request/change logs read by sequence number, read-after-write lag;
- ``server``: the threaded HTTP server and the ``/_sim/`` control API conventions.

A platform module subclasses ``Simulator`` and ``Tenant`` and lists itself in
``channels.simulators.registry``.
"""

from channels.simulators.harness.clock import Clock, Scheduler
from channels.simulators.harness.emitter import Delivery, Emitter, EmitterSettings, RetryPolicy
from channels.simulators.harness.errors import ControlError
from channels.simulators.harness.faults import Fault, FaultPlan, FaultSettings
from channels.simulators.harness.records import ReadLag, SequencedLog, store_bounded
from channels.simulators.harness.server import (
    JSON,
    Request,
    Response,
    Route,
    Simulator,
    SimulatorServer,
    route,
    since,
)
from channels.simulators.harness.tenants import Tenant, TenantRegistry

__all__ = [
    "JSON",
    "Clock",
    "ControlError",
    "Delivery",
    "Emitter",
    "EmitterSettings",
    "Fault",
    "FaultPlan",
    "FaultSettings",
    "ReadLag",
    "Request",
    "Response",
    "RetryPolicy",
    "Route",
    "Scheduler",
    "SequencedLog",
    "Simulator",
    "SimulatorServer",
    "Tenant",
    "TenantRegistry",
    "route",
    "since",
    "store_bounded",
]
