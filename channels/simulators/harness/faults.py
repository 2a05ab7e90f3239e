"""Fault injection per endpoint: what the next calls of one tenant's API go through.

Faults are set through ``POST /_sim/<tenants>/<id>/faults``. A body without ``endpoint``
sets the faults of every endpoint (``"*"``); ``{"endpoint": "graphql:inventorySetQuantities",
...}`` sets those of one endpoint, which are drawn before the ``"*"`` ones. The endpoint
names are the platform's (each platform module lists its own).

Kinds (``CHANNEL_APIS.md`` §6, cross-platform list):

- ``fail``: a 5xx, with the platform's error body or an empty one (``fail_body``);
- ``reset``: the connection is reset, nothing answered;
- ``timeout``: an answer that comes ``timeout_s`` late, after the client has given up;
  the write is applied first (``timeout_applied``, the "unknown outcome" case) or not at all;
- ``throttle``: the platform's throttled answer (429 and its own headers);
- ``expired_token``: the platform's answer to an expired access token (401);
- ``drop``: writes only, a success answer while the write is dropped ("accepted but not
  applied"); an asynchronous platform shows the rejection later, where it would;
- ``latency_ms``: added before every answer.

Each kind has a count (``<kind>_next``, consumed one call at a time) and, where it makes
sense, a probability (``<kind>_rate``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from channels.simulators.harness.errors import ControlError

ALL_ENDPOINTS = "*"


@dataclass
class FaultSettings:
    latency_ms: int = 0
    fail_next: int = 0
    fail_rate: float = 0.0
    fail_status: int = 503
    fail_body: bool = True
    reset_next: int = 0
    reset_rate: float = 0.0
    timeout_next: int = 0
    timeout_s: float = 10.0
    timeout_applied: bool = True
    throttle_next: int = 0
    throttle_rate: float = 0.0
    expired_token_next: int = 0
    drop_next: int = 0
    drop_rate: float = 0.0

    def update(self, values: Mapping[str, object]) -> None:
        defaults = FaultSettings()
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ControlError(400, f"Unknown fault {name!r}.")
            kind = type(getattr(defaults, name))
            if kind is bool:
                if not isinstance(value, bool):
                    raise ControlError(400, f"Fault {name!r} is true or false.")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ControlError(400, f"Fault {name!r} must be a number.")
            if name.endswith("_rate") and not 0 <= float(value) <= 1:
                raise ControlError(400, f"Fault {name!r} is a probability (0 to 1).")
            if name == "fail_status" and not 500 <= int(value) <= 599:
                raise ControlError(400, "'fail_status' is a 5xx status.")
            setattr(self, name, kind(value))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    """What one call draws: at most one of the answering kinds, plus latency and drop."""

    latency_s: float = 0.0
    reset: bool = False
    expired_token: bool = False
    fail_status: int | None = None
    fail_body: bool = True
    throttle: bool = False
    # The answer is held back this long (past the client's timeout).
    timeout_s: float = 0.0
    timeout_applied: bool = True

    @property
    def name(self) -> str | None:
        """The kind drawn, for the request log."""
        for kind, on in (
            ("reset", self.reset),
            ("expired_token", self.expired_token),
            ("fail", self.fail_status is not None),
            ("throttle", self.throttle),
            ("timeout", self.timeout_s > 0),
        ):
            if on:
                return kind
        return None


NO_FAULT = Fault()


def _take(settings: FaultSettings, kind: str) -> bool:
    """Consume one ``<kind>_next`` or roll ``<kind>_rate``; whether the fault fires."""
    left = getattr(settings, f"{kind}_next")
    if left > 0:
        setattr(settings, f"{kind}_next", left - 1)
        return True
    rate = getattr(settings, f"{kind}_rate", 0.0)
    return bool(rate) and random.random() < rate


class FaultPlan:
    """One tenant's faults, by endpoint. Callers hold the tenant's lock."""

    def __init__(self) -> None:
        self.by_endpoint: dict[str, FaultSettings] = {ALL_ENDPOINTS: FaultSettings()}

    @property
    def everywhere(self) -> FaultSettings:
        return self.by_endpoint[ALL_ENDPOINTS]

    def update(self, body: Mapping[str, object]) -> None:
        """Apply a control-API body: ``reset`` clears first, ``endpoint`` picks the target."""
        values = dict(body)
        endpoint = values.pop("endpoint", ALL_ENDPOINTS)
        if not isinstance(endpoint, str) or not endpoint:
            raise ControlError(400, "'endpoint' is an endpoint name.")
        if values.pop("reset", False):
            if endpoint == ALL_ENDPOINTS:
                self.by_endpoint = {ALL_ENDPOINTS: FaultSettings()}
            else:
                self.by_endpoint.pop(endpoint, None)
        if values or endpoint not in self.by_endpoint:
            settings = self.by_endpoint.get(endpoint) or FaultSettings()
            settings.update(values)
            self.by_endpoint[endpoint] = settings

    def _chain(self, endpoints: Iterable[str]) -> list[FaultSettings]:
        chain = [self.by_endpoint[e] for e in endpoints if e in self.by_endpoint]
        chain.append(self.everywhere)
        return chain

    def draw(self, endpoints: Iterable[str]) -> Fault:
        """The fault for one call to the first of ``endpoints`` (most specific first)."""
        chain = self._chain(endpoints)
        if len(chain) == 1 and not _armed(chain[0]):
            return NO_FAULT
        latency_ms = max(settings.latency_ms for settings in chain)
        answer: dict[str, Any] = {"latency_s": latency_ms / 1000}
        for kind in ("reset", "expired_token", "fail", "throttle", "timeout"):
            owner = next((s for s in chain if _take(s, kind)), None)
            if owner is None:
                continue
            if kind == "fail":
                answer |= {"fail_status": owner.fail_status, "fail_body": owner.fail_body}
            elif kind == "timeout":
                answer |= {"timeout_s": owner.timeout_s, "timeout_applied": owner.timeout_applied}
            else:
                answer[kind] = True
            break
        return Fault(**answer)

    def take_drop(self, endpoints: Iterable[str]) -> bool:
        """Whether this write is to be accepted and not applied (consumes a ``drop_next``)."""
        return any(_take(settings, "drop") for settings in self._chain(endpoints))

    def as_json(self) -> dict[str, Any]:
        """The ``"*"`` settings at the top level, the others under ``endpoints``."""
        return self.everywhere.as_json() | {
            "endpoints": {
                name: settings.as_json()
                for name, settings in self.by_endpoint.items()
                if name != ALL_ENDPOINTS
            }
        }


def _armed(settings: FaultSettings) -> bool:
    return bool(
        settings.latency_ms
        or settings.fail_next
        or settings.fail_rate
        or settings.reset_next
        or settings.reset_rate
        or settings.timeout_next
        or settings.throttle_next
        or settings.throttle_rate
        or settings.expired_token_next
    )
