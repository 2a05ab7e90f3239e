"""Walmart's HTTP dialect: the client-credentials token, the WM_* headers, its errors.

``WalmartClient.call`` sends one API call with a valid token and answers Walmart's
response when it is a 2xx or a 4xx about the request's content (the caller reads those per
item); otherwise it raises the matching error of ``channels.connectors.base``: 401/403
(after one fresh token) ``ChannelAuthError``; 429 ``ChannelThrottled`` with Walmart's wait;
413 ``FeedTooLarge``; 5xx, the gateway's empty 503 included, ``ChannelError``.

Every answer's ``X-Current-Token-Count`` / ``X-Next-Replenishment-Time`` (§3.4) is kept as
the client's ``budget``: the pipeline hands it to the channel's shared bucket between
batches, and within a batch a call the platform said it has no token for is not sent (it
is throttled here, as the 429 it would draw).
"""

from __future__ import annotations

import base64
import email.utils
import time
import uuid
from collections.abc import Mapping
from typing import Any

import requests

from channels.connectors import http
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled
from channels.connectors.types import RateBudget

PLATFORM_NAME = "Walmart"
# §3.5: marketplace.walmartapis.com.
# Calls go nowhere else (channels.connectors.outbound).
API_DOMAINS = ("walmartapis.com",)
# §3.5: sent as WM_SVC.NAME on every call.
SERVICE_NAME = "Walmart Marketplace"
# §3.5: a token lasts 15 minutes; one this close to its end is replaced before use, so a
# batch never starts on a token that dies half-way through it.
REFRESH_MARGIN_S = 60.0


_tokens = http.TokenCache()


def forget_tokens() -> None:
    """Drop every cached token (tests; a process that must log in again)."""
    _tokens.forget()


class FeedTooLarge(ChannelError):
    """413 (§3.4): the file is over Walmart's size limit; sent whole it never passes."""


class WalmartClient:
    def __init__(
        self, *, base_url: str, client_id: str, client_secret: str, read_timeout_s: float
    ) -> None:
        # https://marketplace.walmartapis.com (or a simulator's seller URL)
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.read_timeout_s = read_timeout_s
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._key = (self.base_url, client_id)
        # The latest answer's usage headers: (calls left, epoch seconds of the refill).
        self._usage: tuple[int, float] | None = None

    @property
    def budget(self) -> RateBudget | None:
        """§3.4: what the latest answer said is left of the limit (None: it did not say)."""
        if self._usage is None:
            return None
        remaining, refill_at = self._usage
        # A clock of Walmart's far from this one must not hold the channel off for long.
        refill_in_s = http.bounded_wait_s(refill_at - time.time()) or 0.0
        return RateBudget(remaining_calls=remaining, refill_in_s=refill_in_s)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        content_type: str = "",
    ) -> requests.Response:
        """One API call with a valid token; Walmart's 2xx or content 4xx answer.

        A 401 is answered once with a fresh token and the same call: a token that expired
        in the middle of a batch loses no item.
        """
        budget = self.budget
        if budget is not None and budget.remaining_calls <= 0 and budget.refill_in_s > 0:
            raise ChannelThrottled(
                "Walmart said it has no call left before its refill (X-Current-Token-Count 0).",
                retry_after_s=budget.refill_in_s,
            )
        response = None
        for fresh in (False, True):
            headers = self._headers(self._token(fresh=fresh))
            if content_type:
                headers["Content-Type"] = content_type
            response = http.send(
                method,
                f"{self.base_url}{path}",
                platform_name=PLATFORM_NAME,
                api_domains=API_DOMAINS,
                read_timeout_s=self.read_timeout_s,
                headers=headers,
                json=json,
                data=data,
                params=params,
            )
            self._note_usage(response)
            if response.status_code != 401:
                break
        assert response is not None
        _raise_for_call(response)
        return response

    def _note_usage(self, response: requests.Response) -> None:
        """§3.4 (WM8): ``X-Current-Token-Count`` calls left, refilled at
        ``X-Next-Replenishment-Time`` (epoch ms); an answer without them changes nothing.

        The refill is a moment on Walmart's clock: it is taken relative to the answer's
        ``Date`` (to the second, so never early), so a skew between the clocks does not
        hold the channel off."""
        try:
            remaining = int(response.headers["X-Current-Token-Count"])
            refill_at = float(response.headers["X-Next-Replenishment-Time"]) / 1000
        except (KeyError, ValueError):
            return
        now = time.time()
        try:
            answered_at = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            answered_at = now
        self._usage = (remaining, now + (refill_at - answered_at))

    def _headers(self, token: str) -> dict[str, str]:
        # §3.5: the token, a fresh correlation id and the service name on every call.
        return {
            "WM_SEC.ACCESS_TOKEN": token,
            "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            "WM_SVC.NAME": SERVICE_NAME,
            "Accept": "application/json",
        }

    def _token(self, *, fresh: bool) -> str:
        return _tokens.get(self._key, self._new_token, renew=fresh)

    def _new_token(self) -> http.AccessToken:
        """§3.5: ``POST /v3/token`` with Basic client credentials."""
        started = time.monotonic()
        response = http.send(
            "POST",
            f"{self.base_url}/v3/token",
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={
                "Authorization": self._basic,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "WM_SVC.NAME": SERVICE_NAME,
                "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            },
            data=b"grant_type=client_credentials",
        )
        if response.status_code in (400, 401, 403):
            raise ChannelAuthError(
                f"Walmart refused the client credentials (HTTP {response.status_code}): "
                f"{error_message(response)}"
            )
        _raise_for_call(response)
        body = http.json_object(response)
        try:
            assert body is not None
            value = str(body["access_token"])
            expires_in_s = float(body.get("expires_in") or 900)
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ChannelError("Walmart answered the token call without a token.") from None
        return http.AccessToken.lasting(
            value, lifetime_s=expires_in_s, fetched_at=started, margin_s=REFRESH_MARGIN_S
        )


def _raise_for_call(response: requests.Response) -> None:
    status = response.status_code
    if status in (401, 403):
        raise ChannelAuthError(
            f"Walmart refused the token (HTTP {status}): {error_message(response)}"
        )
    if status == 429:
        raise ChannelThrottled(
            f"Walmart throttled the call (HTTP 429): {error_message(response)}",
            retry_after_s=throttle_wait_s(response),
        )
    if status == 413:
        raise FeedTooLarge(f"Walmart refused the file as too large: {error_message(response)}")
    if status >= 500:
        raise ChannelError(
            f"Walmart answered HTTP {status}: {error_message(response)}",
            retry_after_s=http.retry_after_s(response),
        )


def throttle_wait_s(response: requests.Response) -> float | None:
    """§3.4: ``Retry-After``, else the time ``X-Next-Replenishment-Time`` (epoch ms) names."""
    retry_after_s = http.retry_after_s(response)
    if retry_after_s is not None:
        return retry_after_s
    try:
        replenish_ms = float(response.headers["X-Next-Replenishment-Time"])
    except (KeyError, ValueError):
        return None
    return max(0.1, replenish_ms / 1000 - time.time())


def error_message(response: requests.Response) -> str:
    """§3.4 (WM9): the ``errors`` list's codes and messages (the older ``{"errors":
    {"error": [...]}}`` and ``description`` too); the gateway's empty 503 says so."""
    if not response.content:
        return "no body (Walmart's gateway)"
    body = http.json_object(response)
    errors: Any = body.get("errors") if body else None
    if isinstance(errors, dict):
        errors = errors.get("error")
    if not isinstance(errors, list) or not errors:
        return response.text[:500]
    parts = []
    for error in errors:
        if isinstance(error, dict):
            message = error.get("message") or error.get("description") or ""
            parts.append(f"{error.get('code') or 'ERROR'}: {message}".strip())
        else:
            parts.append(str(error))
    return "; ".join(parts)
