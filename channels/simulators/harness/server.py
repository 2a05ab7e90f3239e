"""The HTTP side every simulator shares: a threaded server, requests and answers, and the
``/_sim/`` control API conventions.

A platform subclasses ``Simulator``: it names its tenants (``tenant_collection = "shops"``),
builds them from a control body, answers its own API in ``handle_api`` and may add control
routes. The harness answers these for every platform, ``{c}`` being the tenant collection:

- ``GET /_sim/``: platform, tenants, clock;
- ``POST /_sim/reset``: drop every tenant and pending timer, put the clock back to real time;
- ``GET|POST /_sim/clock``: read it; ``{"advance_s": n}``, ``{"set_time": epoch}``,
  ``{"freeze": true}``, ``{"resume": true}``;
- ``POST /_sim/{c}``: create (or replace) a tenant, 201;
- ``GET /_sim/{c}/<id>``: its settings and state; ``POST /_sim/{c}/<id>/settings``: change some;
- ``POST /_sim/{c}/<id>/faults``: fault injection (``harness.faults``);
- ``POST /_sim/{c}/<id>/emitter``: webhook disorder (``harness.emitter``); ``{"release": true}``
  sends the held deliveries now, newest first;
- ``GET /_sim/{c}/<id>/requests?since=<seq>``: every API call with headers and raw body;
- ``GET /_sim/{c}/<id>/webhooks``: every delivery with its attempts;
- ``POST /_sim/{c}/<id>/redeliver``: ``{"webhook_id": ...}``, one more attempt now.

Control answers are JSON; a bad call answers ``{"error": message}`` with a 4xx.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from channels.simulators.harness.clock import Clock, Scheduler
from channels.simulators.harness.emitter import Delivery, Emitter, RetryPolicy
from channels.simulators.harness.errors import ControlError
from channels.simulators.harness.faults import Fault
from channels.simulators.harness.tenants import Tenant, TenantRegistry

JSON = dict[str, Any]
TENANT_NAME = r"[\w.-]+"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    # The Host header: a platform can route by it (``<shop>.myshopify.com``).
    host: str = ""

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else value


@dataclass
class Response:
    status: int
    # JSON-serialisable, or raw bytes (sent as they are).
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Held back this long before answering (the timeout fault).
    delay_s: float = 0.0
    # Reset the connection instead of answering (the reset fault).
    reset: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[re.Match[str], JSON, dict[str, list[str]]], JSON]
    status: int = 200


def route(
    method: str,
    pattern: str,
    handler: Callable[[re.Match[str], JSON, dict[str, list[str]]], JSON],
    status: int = 200,
) -> Route:
    return Route(method, re.compile(f"^{pattern}$"), handler, status)


def since(query: Mapping[str, list[str]]) -> int:
    try:
        return int(query.get("since", ["0"])[0])
    except ValueError:
        raise ControlError(400, "'since' is a sequence number.") from None


T = TypeVar("T", bound=Tenant)


class Simulator(Generic[T]):
    """A platform simulator: tenants, clock, emitter, control API. Subclass per platform."""

    # Shown in the start-up line: "<display_name> simulator listening on <url>".
    display_name: ClassVar[str] = ""
    tenant_collection: ClassVar[str] = "tenants"
    tenant_kind: ClassVar[str] = "tenant"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.scheduler = Scheduler(self.clock, name=self.tenant_kind)
        self.emitter = Emitter(self.scheduler)
        self.tenants: TenantRegistry[T] = TenantRegistry(self.tenant_kind)
        self._routes = self._common_routes() + self.control_routes()

    # -- What a platform provides ------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        raise NotImplementedError

    def tenant_state(self, tenant: T) -> JSON:
        """The platform's part of ``GET /_sim/{c}/<id>`` (called with the lock held)."""
        return {}

    def update_settings(self, tenant: T, body: JSON) -> JSON:
        raise ControlError(400, "This simulator has no settings to change.")

    def retry_policy(self, tenant: T) -> RetryPolicy:
        return RetryPolicy(retries=0, base_s=1.0)

    def deliver(
        self, tenant: T, delivery: Delivery, options: Mapping[str, Any] | None = None
    ) -> JSON:
        """Send an event now (lock free), as the control call's ``options`` ask: extra
        ``duplicates``, or ``deliver: false`` to keep it undelivered (a webhook lost on
        purpose, redeliverable). The answer's ``webhook_id`` and ``delivery_status``."""
        options = options or {}
        status = self.emitter.emit(
            tenant,
            delivery,
            self.retry_policy(tenant),
            duplicates=int(options.get("duplicates", 0)),
            deliver=bool(options.get("deliver", True)),
        )
        return {"webhook_id": delivery.webhook_id, "delivery_status": status}

    def control_routes(self) -> list[Route]:
        """The platform's own ``/_sim/`` routes, after the common ones."""
        return []

    def handle_api(self, request: Request) -> Response:
        """Everything that is not under ``/_sim/``."""
        return Response(404, {"error": "Not Found"})

    def error_response(self, status: int, with_body: bool) -> Response:
        """The platform's 5xx answer (the fail fault)."""
        return Response(status, {"error": "Service Unavailable"} if with_body else b"")

    def throttled_response(self, tenant: T) -> Response:
        """The platform's throttled answer, with its own headers (the throttle fault)."""
        return Response(429, {"error": "Too Many Requests"}, headers={"Retry-After": "1"})

    def expired_token_response(self, tenant: T) -> Response:
        """The platform's answer to an expired access token (the expired_token fault)."""
        return Response(401, {"error": "Unauthorized"})

    def seed(self, seed: JSON) -> int:
        """Create the tenants a seed file lists under ``tenant_collection``; how many."""
        bodies = seed.get(self.tenant_collection, [])
        for body in bodies:
            self.create_tenant(dict(body))
        return len(bodies)

    def on_reset(self) -> None:
        """Platform state beyond the tenants (id counters...) to clear on reset."""

    # -- Shared behaviour --------------------------------------------------------------------

    def fault_response(self, tenant: T, fault: Fault) -> Response | None:
        """The answer for a fault that replaces the call; None if the call goes ahead."""
        if fault.reset:
            return Response(0, reset=True)
        if fault.expired_token:
            return self.expired_token_response(tenant)
        if fault.fail_status is not None:
            return self.error_response(fault.fail_status, fault.fail_body)
        if fault.throttle:
            return self.throttled_response(tenant)
        if fault.timeout_s and not fault.timeout_applied:
            # Nothing reaches the application: the client gives up, the gateway answers late.
            return Response(504, {"error": "Gateway Timeout"}, delay_s=fault.timeout_s)
        return None

    def log_request(self, tenant: T, request: Request, **extra: Any) -> JSON:
        """Append the call to the tenant's request log; the entry (set ``status`` later)."""
        entry: JSON = {
            "time": self.clock.time(),
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers.items()),
            "body": request.body.decode("utf-8", errors="replace"),
            "status": None,
            **extra,
        }
        with tenant.lock:
            return tenant.requests.append(entry)

    def reset(self) -> JSON:
        self.tenants.clear()
        self.scheduler.clear()
        self.clock.reset()
        self.on_reset()
        return {"ok": True}

    def stop(self) -> None:
        self.tenants.clear()
        self.scheduler.stop()

    def control(self, request: Request) -> Response:
        try:
            payload = json.loads(request.body) if request.body else {}
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            return Response(400, {"error": "The body must be a JSON object."})
        path = request.path.rstrip("/") or "/"
        for candidate in self._routes:
            match = candidate.pattern.match(path)
            if match is None or candidate.method != request.method:
                continue
            try:
                return Response(candidate.status, candidate.handler(match, payload, request.query))
            except ControlError as error:
                return Response(error.status, {"error": str(error)})
        return Response(404, {"error": f"No route {request.method} {request.path}."})

    def _common_routes(self) -> list[Route]:
        tenants = f"/_sim/{self.tenant_collection}"
        one = f"{tenants}/(?P<tenant>{TENANT_NAME})"
        return [
            route("GET", "/_sim", lambda m, b, q: self.overview()),
            route("POST", "/_sim/reset", lambda m, b, q: self.reset()),
            route("GET", "/_sim/clock", lambda m, b, q: self.clock.state()),
            route("POST", "/_sim/clock", lambda m, b, q: self.move_clock(b)),
            route("POST", tenants, lambda m, b, q: self.create_tenant(b), 201),
            route("GET", one, lambda m, b, q: self.state_of(m["tenant"])),
            route("POST", f"{one}/settings", lambda m, b, q: self.settings_of(m["tenant"], b)),
            route("POST", f"{one}/faults", lambda m, b, q: self.set_faults(m["tenant"], b)),
            route("POST", f"{one}/emitter", lambda m, b, q: self.set_emitter(m["tenant"], b)),
            route("GET", f"{one}/requests", lambda m, b, q: self.requests_of(m["tenant"], q)),
            route("GET", f"{one}/webhooks", lambda m, b, q: self.webhooks_of(m["tenant"])),
            route("POST", f"{one}/redeliver", lambda m, b, q: self.redeliver(m["tenant"], b)),
        ]

    def overview(self) -> JSON:
        return {
            "platform": self.display_name,
            self.tenant_collection: self.tenants.names(),
            "clock": self.clock.state(),
        }

    def move_clock(self, body: JSON) -> JSON:
        try:
            if body.get("resume"):
                self.clock.resume()
            if body.get("freeze"):
                self.clock.freeze()
            if "set_time" in body:
                self.clock.set_time(float(body["set_time"]))
            if "advance_s" in body:
                self.clock.advance(float(body["advance_s"]))
        except (TypeError, ValueError) as error:
            raise ControlError(400, f"Bad clock move: {error}") from None
        return self.clock.state()

    def state_of(self, name: str) -> JSON:
        tenant = self.tenants.require(name)
        with tenant.lock:
            return self.tenant_state(tenant) | tenant.harness_state()

    def settings_of(self, name: str, body: JSON) -> JSON:
        tenant = self.tenants.require(name)
        return self.update_settings(tenant, body)

    def set_faults(self, name: str, body: JSON) -> JSON:
        tenant = self.tenants.require(name)
        with tenant.lock:
            tenant.faults.update(body)
            return {"faults": tenant.faults.as_json()}

    def set_emitter(self, name: str, body: JSON) -> JSON:
        tenant = self.tenants.require(name)
        values = dict(body)
        release = bool(values.pop("release", False))
        with tenant.lock:
            tenant.emitter.update(values)
            held: list[Any] = []
            if release:
                held, tenant.held = tenant.held, []
                tenant.emitter.hold_next = 0
            answer = {"emitter": tenant.emitter.as_json() | {"held": len(tenant.held)}}
        if held:
            self.emitter.release(tenant, self.retry_policy(tenant), held)
        return answer | {"released": len(held)}

    def requests_of(self, name: str, query: Mapping[str, list[str]]) -> JSON:
        tenant = self.tenants.require(name)
        with tenant.lock:
            return {"requests": tenant.requests.since(since(query))}

    def webhooks_of(self, name: str) -> JSON:
        tenant = self.tenants.require(name)
        with tenant.lock:
            return {"webhooks": [delivery.as_json() for delivery in tenant.deliveries.values()]}

    def redeliver(self, name: str, body: JSON) -> JSON:
        tenant = self.tenants.require(name)
        with tenant.lock:
            delivery = tenant.deliveries.get(str(body.get("webhook_id")))
        if delivery is None:
            raise ControlError(404, f"No delivery {body.get('webhook_id')!r}.")
        status = self.emitter.redeliver(tenant, delivery, self.retry_policy(tenant))
        return {"webhook_id": delivery.webhook_id, "delivery_status": status}


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive: a new TCP connection per call would cost the latency
    # budget at 50 orders/s.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, delayed ACKs add ~40 ms to each.
    disable_nagle_algorithm = True
    # An idle keep-alive connection frees its thread after this long.
    timeout = 120
    server: SimulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log under /_sim/ is the record."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header on the platform's clock: a client that reads absolute times
        in the answers (a rate limit's refill) relates them to it."""
        return super().date_time_string(
            self.server.simulator.clock.time() if timestamp is None else timestamp
        )

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # A request through a proxy names the whole URL; its path is what routes.
        parts = urlsplit(self.path)
        request = Request(
            method=method,
            path=parts.path or "/",
            query=parse_qs(parts.query),
            headers=cast(Mapping[str, str], self.headers),
            body=body,
            host=self.headers.get("Host", ""),
        )
        simulator = self.server.simulator
        try:
            if request.path == "/_sim" or request.path.startswith("/_sim/"):
                response = simulator.control(request)
            else:
                response = simulator.handle_api(request)
        except Exception as error:
            # One broken call answers 500 instead of killing its connection thread.
            response = Response(500, {"error": f"{type(error).__name__}: {error}"})
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.reset:
            self._reset_connection()
            return
        if response.delay_s:
            time.sleep(response.delay_s)
        if isinstance(response.body, bytes | bytearray):
            data = bytes(response.body)
        else:
            data = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (the timeout fault): what it missed is the point of the fault.
            self.close_connection = True

    def _reset_connection(self) -> None:
        """Close with an RST (SO_LINGER 0), not a FIN: the client sees "connection reset"."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        except OSError:
            pass


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 refuses connections when 100+ orders arrive at once.
    request_queue_size = 512

    def __init__(self, simulator: Simulator[Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def server_close(self) -> None:
        self.simulator.stop()
        super().server_close()

    def start_in_thread(self) -> threading.Thread:
        """Serve from a daemon thread (in-process use); stop with ``shutdown()``."""
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.simulator.tenant_kind}-simulator",
            daemon=True,
        )
        thread.start()
        return thread
