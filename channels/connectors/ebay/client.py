"""eBay's HTTP dialect: the OAuth refresh-token grant, the bearer token, its error bodies.

``EbayClient.call`` sends one API call with a valid token and answers eBay's response when
it is a 2xx or a 4xx about the request's content (the caller reads those per entry);
otherwise it raises the matching error of ``channels.connectors.base``: 401 (after one
fresh token) ``ChannelAuthError``; 429 ``ChannelThrottled``; 5xx ``ChannelError``.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests

from channels.connectors import http
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled

PLATFORM_NAME = "eBay"
# §5.5: api.ebay.com, and api.sandbox.ebay.com for the sandbox.
# Calls go nowhere else (channels.connectors.outbound).
API_DOMAINS = ("ebay.com",)
# §5.5: the scope a token needs for the Inventory and Fulfillment calls.
SCOPES = (
    "https://api.ebay.com/oauth/api_scope/sell.inventory "
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment"
)
APPLICATION_SCOPE = "https://api.ebay.com/oauth/api_scope"
# §5.5: a token lasts 7200 s [M]; one this close to its end is replaced before use.
REFRESH_MARGIN_S = 120.0
DEFAULT_TOKEN_LIFETIME_S = 7200.0

_tokens = http.TokenCache()


def forget_tokens() -> None:
    """Drop every cached token (tests; a process that must log in again)."""
    _tokens.forget()


class EbayClient:
    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        read_timeout_s: float,
        application: bool = False,
    ) -> None:
        # https://api.ebay.com (or a simulator's seller URL)
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url or f"{self.base_url}/identity/v1/oauth2/token"
        self.refresh_token = refresh_token
        self.read_timeout_s = read_timeout_s
        # An application token (the client-credentials grant) for calls made as the app, not
        # for a seller: the Notification API's public keys (EB3).
        self.application = application
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._key = (self.token_url, client_id, "" if application else refresh_token)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> requests.Response:
        """One API call with a valid token; eBay's 2xx or content 4xx answer.

        A 401 (§5.5: errorId 1001, the token expired) is answered once with a fresh token
        and the same call: a token that dies in the middle of a batch loses no entry.
        """
        response = None
        for fresh in (False, True):
            token = _tokens.get(self._key, self._new_token, renew=fresh)
            response = http.send(
                method,
                f"{self.base_url}{path}",
                platform_name=PLATFORM_NAME,
                api_domains=API_DOMAINS,
                read_timeout_s=self.read_timeout_s,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                },
                json=json,
                params=params,
            )
            if response.status_code != 401:
                break
        assert response is not None
        _raise_for_call(response)
        return response

    def _new_token(self) -> http.AccessToken:
        """§5.5: the refresh-token grant with Basic client credentials (the client-credentials
        grant for an application token)."""
        grant = (
            {"grant_type": "client_credentials", "scope": APPLICATION_SCOPE}
            if self.application
            else {
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "scope": SCOPES,
            }
        )
        started = time.monotonic()
        response = http.send(
            "POST",
            self.token_url,
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={
                "Authorization": self._basic,
                "Content-Type": "application/x-www-form-urlencoded",
            },
            data=urllib.parse.urlencode(grant).encode(),
        )
        if response.status_code in (400, 401, 403):
            raise ChannelAuthError(
                f"eBay refused the {'client credentials' if self.application else 'refresh token'}"
                f" (HTTP {response.status_code}): "
                f"{response.text[:300]}"
            )
        _raise_for_call(response)
        body = http.json_object(response)
        try:
            assert body is not None
            value = str(body["access_token"])
            lifetime_s = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME_S)
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ChannelError("eBay answered the token call without a token.") from None
        return http.AccessToken.lasting(
            value, lifetime_s=lifetime_s, fetched_at=started, margin_s=REFRESH_MARGIN_S
        )


def _raise_for_call(response: requests.Response) -> None:
    status = response.status_code
    if status in (401, 403):
        raise ChannelAuthError(
            f"eBay refused the token (HTTP {status}): {error_message(response)}"
        )
    if status == 429:
        raise ChannelThrottled(
            f"eBay's call quota is spent (HTTP 429): {error_message(response)}",
            # §5.4: eBay names no wait; the pipeline's own hold-off applies.
            retry_after_s=http.retry_after_s(response),
        )
    if status >= 500:
        raise ChannelError(
            f"eBay answered HTTP {status}: {error_message(response)}",
            retry_after_s=http.retry_after_s(response),
        )


def error_message(response: requests.Response) -> str:
    """§5.4: the ``errors`` list's ids and messages."""
    if not response.content:
        return "no body"
    body = http.json_object(response)
    return errors_text((body or {}).get("errors")) or response.text[:500]


def errors_text(errors: object) -> str:
    """ErrorDetailV3 entries as "errorId: message; ..." ("" for none)."""
    if not isinstance(errors, list):
        return ""
    return "; ".join(
        f"{error.get('errorId', 'ERROR')}: {error.get('message', '')}".strip()
        for error in errors
        if isinstance(error, dict)
    )
