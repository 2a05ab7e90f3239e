"""Amazon SP-API's HTTP dialect: LWA access tokens, ``x-amz-access-token``, error bodies.

``AmazonClient.call`` answers a call's JSON body or raises the matching error of
``channels.connectors.base``: 401/403 after one token refresh ``ChannelAuthError``; 429
``QuotaExceeded`` ``ChannelThrottled`` with an exponential backoff (§2.4: no Retry-After is
promised); any other failure ``ChannelError``. Facts cite ``CHANNEL_APIS.md`` §2.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.connectors import http
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled

PLATFORM_NAME = "Amazon"
# §2.5: the regional SP-API hosts (sellingpartnerapi-na|eu|fe.amazon.com), Login with
# Amazon (api.amazon.com) and the SQS queues notifications arrive on (amazonaws.com).
# Calls go nowhere else (channels.connectors.outbound).
API_DOMAINS = ("amazon.com", "amazonaws.com")
# §2.5: an access token lives expires_in (3600 s); renewed this long before it ends, so a
# call never leaves with a token that expires on its way.
TOKEN_MARGIN_S = 60.0
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class LwaCredentials:
    """Login with Amazon: the refresh-token grant's inputs (``Channel.credentials``)."""

    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str


# One LWA call per hour per seller, not one per push.
_tokens = http.TokenCache()
# Throttles in a row, per (credentials, operation): the exponent of the backoff.
_throttles: dict[tuple[LwaCredentials, str], int] = {}
_throttles_lock = threading.Lock()


def forget_tokens() -> None:
    """Drop every cached access token and backoff (tests; a rotated refresh token)."""
    _tokens.forget()
    with _throttles_lock:
        _throttles.clear()


class AmazonClient:
    def __init__(
        self,
        *,
        api_url: str,
        credentials: LwaCredentials,
        read_timeout_s: float,
        backoff_base_s: float,
    ) -> None:
        # §2.5: the regional endpoint, https://sellingpartnerapi-na|eu|fe.amazon.com.
        self.api_url = api_url.rstrip("/")
        self.credentials = credentials
        self.read_timeout_s = read_timeout_s
        self.backoff_base_s = backoff_base_s

    # -- Tokens ------------------------------------------------------------------------------

    def access_token(self, *, renew: bool = False) -> str:
        """A valid access token: the cached one unless ``renew`` or near its end."""
        return _tokens.get(self.credentials, self._fetch_token, renew=renew)

    def _fetch_token(self) -> http.AccessToken:
        """§2.5: ``POST /auth/o2/token`` with the refresh-token grant."""
        started = time.monotonic()
        response = http.send(
            "POST",
            self.credentials.token_url,
            platform_name="Login with Amazon",
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
            data=(
                "grant_type=refresh_token"
                f"&refresh_token={_form(self.credentials.refresh_token)}"
                f"&client_id={_form(self.credentials.client_id)}"
                f"&client_secret={_form(self.credentials.client_secret)}"
            ).encode(),
        )
        body = http.json_object(response)
        if response.status_code in (400, 401, 403):
            reason = (body or {}).get("error_description") or (body or {}).get("error") or ""
            raise ChannelAuthError(f"Login with Amazon refused the credentials: {reason}")
        if response.status_code == 429:
            raise ChannelThrottled("Login with Amazon throttled the call (HTTP 429).")
        if response.status_code != 200 or body is None or "access_token" not in body:
            raise ChannelError(f"Login with Amazon answered HTTP {response.status_code}.")
        return http.AccessToken.lasting(
            str(body["access_token"]),
            lifetime_s=float(body.get("expires_in") or 3600),
            fetched_at=started,
            margin_s=TOKEN_MARGIN_S,
        )

    # -- Calls -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One SP-API call; its JSON object (None for a 404 when ``not_found_ok``).

        A 401/403 renews the token once (§2.5: an expired token answers 403 Unauthorized).
        """
        response = self._send(method, path, params=params, json=json, renew=False)
        if response.status_code in (401, 403):
            response = self._send(method, path, params=params, json=json, renew=True)
        key = (self.credentials, operation)
        if response.status_code in (401, 403):
            raise ChannelAuthError(
                f"Amazon refused the access token for {operation} "
                f"(HTTP {response.status_code}): {_error_text(response)}"
            )
        if response.status_code == 429:
            # §2.4: QuotaExceeded carries no Retry-After: back off exponentially, per
            # operation, until a call goes through.
            with _throttles_lock:
                count = _throttles.get(key, 0)
                _throttles[key] = count + 1
            wait_s = min(MAX_BACKOFF_S, self.backoff_base_s * 2**count)
            raise ChannelThrottled(
                f"Amazon throttled {operation} (429 QuotaExceeded).", retry_after_s=wait_s
            )
        with _throttles_lock:
            _throttles.pop(key, None)
        if response.status_code == 404 and not_found_ok:
            return None
        body = http.json_object(response)
        if response.status_code >= 300 or (body is None and response.content):
            raise ChannelError(
                f"Amazon answered HTTP {response.status_code} to {operation}: "
                f"{_error_text(response)}"
            )
        return body or {}

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        renew: bool,
    ) -> Any:
        return http.send(
            method,
            f"{self.api_url}{path}",
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={
                "x-amz-access-token": self.access_token(renew=renew),
                "Accept": "application/json",
                "User-Agent": "nventory (Language=Python)",
            },
            params=params,
            json=json,
        )

    def put_document(self, url: str, content: bytes, content_type: str) -> None:
        """Upload a feed document to its pre-signed URL (§2.2 step 2): no SP-API token."""
        response = http.send(
            "PUT",
            url,
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={"Content-Type": content_type},
            data=content,
        )
        if response.status_code >= 300:
            raise ChannelError(f"The feed document upload answered HTTP {response.status_code}.")

    def get_document(self, url: str) -> bytes:
        response = http.send(
            "GET",
            url,
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={},
        )
        if response.status_code != 200:
            raise ChannelError(f"The report download answered HTTP {response.status_code}.")
        return bytes(response.content)


def _form(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _error_text(response: Any) -> str:
    """§2.4: ``{"errors": [{code, message, details}]}`` as one line."""
    body = http.json_object(response)
    errors = (body or {}).get("errors")
    if not isinstance(errors, list):
        return ""
    return "; ".join(
        f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        for error in errors
        if isinstance(error, dict)
    )
