"""The HTTP layer every platform client shares: keep-alive sessions, proxies, timeouts.

A platform's ``client.py`` builds its requests (auth, signing, headers) and reads its
error bodies; sending, and turning a transport failure into ``ChannelError``, happens here
once.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from channels.connectors import outbound
from channels.connectors.base import ChannelError

CONNECT_TIMEOUT_S = 1.0

_sessions = threading.local()


class DestinationRefused(ChannelError):
    """The call would go where a channel's calls may not (``channels.connectors.outbound``):
    nothing was sent."""


class _RefusedAddress(NewConnectionError):
    """The connection reached an address calls may not go to; closed before a byte went."""


def _checked_socket(
    connection: HTTPConnection, connect: Callable[[], socket.socket]
) -> socket.socket:
    """A new connection's socket once its addresses are allowed: every address the host
    resolves to before connecting (no packet goes to a private one), and the address
    reached after (a name rebound in between). Through a proxy the peer is the proxy: the
    target was resolved and checked before the request."""
    if connection.proxy is not None:
        return connect()
    refusal = outbound.resolved_refusal(str(connection._dns_host), cache=False)
    if refusal:
        raise _RefusedAddress(connection, refusal)
    sock = connect()
    refusal = outbound.address_refusal(str(sock.getpeername()[0]))
    if refusal:
        sock.close()
        raise _RefusedAddress(connection, refusal)
    return sock


class _CheckedConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_socket(self, super()._new_conn)


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_socket(self, super()._new_conn)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    """Every connection is checked against the address it reached, after DNS, so a name
    that resolves (or is rebound) to a private or link-local address gets nothing."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }


def session() -> requests.Session:
    """One keep-alive session per process and thread.

    Reusing connections keeps a push within the latency budget; a forked worker must not share
    its parent's sockets, and a Session's cookie jar is not thread-safe.
    """
    current: requests.Session | None = getattr(_sessions, "session", None)
    if current is None or _sessions.pid != os.getpid():
        current = requests.Session()
        current.mount("https://", _CheckedAdapter(pool_connections=8, pool_maxsize=32))
        current.mount("http://", _CheckedAdapter(pool_connections=8, pool_maxsize=32))
        # requests reads the proxy, CA-bundle and .netrc settings from the environment on
        # every call when trust_env is on: a scan of every variable, a quarter of a push's
        # CPU. They are read once instead: here, and per URL in proxies_for.
        current.trust_env = False
        current.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        _sessions.session, _sessions.pid = current, os.getpid()
    return current


@functools.lru_cache(maxsize=256)
def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment sets for this URL (none if NO_PROXY covers it)."""
    return dict(requests.utils.get_environ_proxies(url))


def send(
    method: str,
    url: str,
    *,
    platform_name: str,
    api_domains: Sequence[str],
    read_timeout_s: float,
    headers: Mapping[str, str],
    json: Any = None,
    data: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> requests.Response:
    """One request; a timeout or a transport failure becomes ``ChannelError``.

    A timeout says so: the platform may have applied the write, so the retry must carry
    the same idempotency key (or be absolute). A URL that is not one of ``api_domains``
    over https (loopback only for local simulators), or a connection that reaches a
    private, link-local or loopback address, raises ``DestinationRefused`` before any byte
    is sent. A redirect is never followed: it raises ``ChannelError``.
    """
    refusal = outbound.url_refusal(url, api_domains=api_domains)
    proxies = proxies_for(url)
    if not refusal and proxies:
        refusal = outbound.resolved_refusal((urlsplit(url).hostname or "").rstrip("."))
    if refusal:
        raise DestinationRefused(f"Not sent to {platform_name}: {refusal}")
    try:
        response = session().request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=dict(headers),
            timeout=(CONNECT_TIMEOUT_S, read_timeout_s),
            proxies=proxies,
            # A redirect would carry the channel's credentials (custom token headers
            # included) to whatever host it names: a platform's API does not redirect.
            allow_redirects=False,
        )
    except requests.Timeout:
        raise ChannelError(
            f"{platform_name} did not answer within {read_timeout_s:g} s: the outcome is unknown."
        ) from None
    except requests.ConnectionError as error:
        refused = _refused_address(error)
        if refused:
            raise DestinationRefused(f"Not sent to {platform_name}: {refused}") from None
        raise ChannelError(f"Cannot reach {platform_name}: {type(error).__name__}.") from None
    except requests.RequestException as error:
        raise ChannelError(f"Cannot reach {platform_name}: {type(error).__name__}.") from None
    if response.is_redirect:
        # Its target is not named: it is whatever the answer said, not a platform's word.
        raise ChannelError(
            f"{platform_name} answered HTTP {response.status_code} (a redirect): not followed."
        )
    return response


def _refused_address(error: requests.ConnectionError) -> str:
    """The reason a connection was refused by the address check, if that was the cause."""
    cause: object = error.args[0] if error.args else None
    reason = getattr(cause, "reason", cause)
    if isinstance(reason, _RefusedAddress):
        return str(reason)
    return ""


# The longest wait a platform's answer may impose: a hint beyond it (or inf, nan, 1e10)
# would freeze the channel's pushes on the word of one answer.
MAX_RETRY_AFTER_S = 300.0


def retry_after_s(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a sane number (capped)."""
    return bounded_wait_s(response.headers.get("Retry-After"))


def bounded_wait_s(value: object) -> float | None:
    """A wait a platform asked for, in seconds: None unless a finite number above 0,
    never more than ``MAX_RETRY_AFTER_S``."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the moment (``time.monotonic``) after which it is not used."""

    value: str
    expires_at: float

    @classmethod
    def lasting(
        cls, value: str, *, lifetime_s: float, fetched_at: float, margin_s: float
    ) -> AccessToken:
        """A token the platform said lives ``lifetime_s`` from ``fetched_at``, retired
        ``margin_s`` early so that a batch never starts on one about to die."""
        return cls(value=value, expires_at=fetched_at + max(0.0, lifetime_s - margin_s))


class TokenCache:
    """Access tokens per account, shared by every connector of the process: each push run
    builds a new connector, and a token fetched per run would double the platform's calls.

    ``get`` answers the cached token while it is valid; with ``renew`` (the platform just
    refused it) or past its end it fetches a new one. Two threads may fetch at once; the
    later one's token is kept, both are valid.
    """

    def __init__(self) -> None:
        self._tokens: dict[Hashable, AccessToken] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fetch: Callable[[], AccessToken], *, renew: bool = False) -> str:
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not renew and cached.expires_at > time.monotonic():
            return cached.value
        token = fetch()
        with self._lock:
            self._tokens[key] = token
        return token.value

    def forget(self) -> None:
        """Drop every cached token (tests; a rotated secret)."""
        with self._lock:
            self._tokens.clear()
