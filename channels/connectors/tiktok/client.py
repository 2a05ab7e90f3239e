"""TikTok Shop's HTTP dialect: signed calls, the refreshed access token, the envelope.

Every call carries ``app_key``, ``timestamp``, ``shop_cipher`` and ``sign`` in its query
and ``x-tts-access-token`` in its headers (``CHANNEL_APIS.md`` §4.2). The JSON body is
serialised once, signed, and those very bytes are sent (``SignedRequest``): a body
serialised again on the way out (``requests``' ``json=``) could differ from the signed one
by a space and be refused as a bad sign.

``TikTokClient.call`` answers the envelope's ``data`` when ``code`` is 0 and otherwise
raises: a throttle (HTTP 429, or the rate-limit code) ``ChannelThrottled``; a refused token
(after one fresh token), app key or sign ``ChannelAuthError``; any other non-zero code,
most arriving with HTTP 200 (§4.5), ``TikTokBusinessError`` (a ``ChannelError`` carrying
the code); a 5xx or a body that is not the envelope ``ChannelError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from channels.connectors import http
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled

PLATFORM_NAME = "TikTok Shop"
# §4.2: open-api.tiktokglobalshop.com, and auth.tiktok-shops.com for tokens.
# Calls go nowhere else (channels.connectors.outbound).
API_DOMAINS = ("tiktokglobalshop.com", "tiktok-shops.com")
# §4.2: the parameters the signature leaves out.
UNSIGNED_PARAMETERS = frozenset({"sign", "access_token"})
# §4.2: a token lasts about 7 days [M]; one this close to its end is replaced before use.
REFRESH_MARGIN_S = 3600.0
# §4.5: the codes are [M]; the simulator's defaults.
EXPIRED_TOKEN_CODES = frozenset({105001, 105002})
AUTH_CODES = EXPIRED_TOKEN_CODES | frozenset({105003, 106001, 106002, 106011})
RATE_LIMIT_CODES = frozenset({36009003})

_tokens = http.TokenCache()


def forget_tokens() -> None:
    """Drop every cached token (tests; a rotated app secret)."""
    _tokens.forget()


class TikTokBusinessError(ChannelError):
    """A non-zero ``code`` that is neither a throttle nor an auth refusal (§4.5)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


def request_sign(*, secret: str, path: str, params: Mapping[str, str], body: bytes) -> str:
    """§4.2: hex HMAC-SHA256 keyed with the app secret of ``secret + path + k1v1k2v2… +
    body + secret`` (sorted by key, without ``sign`` and ``access_token``)."""
    joined = "".join(
        f"{key}{value}" for key, value in sorted(params.items()) if key not in UNSIGNED_PARAMETERS
    )
    message = secret.encode() + path.encode() + joined.encode() + body + secret.encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """One call as it goes on the wire: the body here is the one the sign covers."""

    method: str
    path: str
    params: Mapping[str, str]
    body: bytes


def sign_request(
    *,
    method: str,
    path: str,
    params: Mapping[str, str],
    payload: Mapping[str, Any] | None,
    app_key: str,
    secret: str,
    shop_cipher: str,
    timestamp_s: int,
) -> SignedRequest:
    """The call's query (common parameters and ``sign``) and its body, serialised once."""
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
    query = {
        **params,
        "app_key": app_key,
        "timestamp": str(timestamp_s),
        "shop_cipher": shop_cipher,
    }
    query["sign"] = request_sign(secret=secret, path=path, params=query, body=body)
    return SignedRequest(method=method, path=path, params=query, body=body)


class TikTokClient:
    def __init__(
        self,
        *,
        base_url: str,
        auth_base_url: str,
        app_key: str,
        app_secret: str,
        shop_cipher: str,
        refresh_token: str,
        read_timeout_s: float,
    ) -> None:
        # https://open-api.tiktokglobalshop.com (or a simulator's URL)
        self.base_url = base_url.rstrip("/")
        # https://auth.tiktok-shops.com
        self.auth_base_url = (auth_base_url or base_url).rstrip("/")
        self.app_key = app_key
        self._secret = app_secret
        self.shop_cipher = shop_cipher
        self._refresh_token = refresh_token
        self.read_timeout_s = read_timeout_s
        self._key = (self.auth_base_url, app_key, shop_cipher)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One signed call; the envelope's ``data`` when its code is 0.

        A refused token is answered once with a fresh one and the same call (signed again:
        the timestamp moves), so a token that expired mid-batch loses no item.
        """
        for fresh in (False, True):
            token = _tokens.get(self._key, self._new_token, renew=fresh)
            signed = sign_request(
                method=method,
                path=path,
                params=params or {},
                payload=payload,
                app_key=self.app_key,
                secret=self._secret,
                shop_cipher=self.shop_cipher,
                timestamp_s=int(time.time()),
            )
            response = self.send(signed, token)
            envelope = http.json_object(response)
            code = _code(envelope)
            if response.status_code != 401 and code not in EXPIRED_TOKEN_CODES:
                break
        return _data(response, envelope)

    def send(self, signed: SignedRequest, token: str) -> requests.Response:
        """The signed request, its body sent as the very bytes signed."""
        headers = {"x-tts-access-token": token, "Accept": "application/json"}
        if signed.body:
            headers["Content-Type"] = "application/json"
        return http.send(
            signed.method,
            f"{self.base_url}{signed.path}",
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers=headers,
            data=signed.body or None,
            params=signed.params,
        )

    def _new_token(self) -> http.AccessToken:
        """§4.2: the refresh token (with the app's key and secret) for an access token."""
        started = time.monotonic()
        response = http.send(
            "GET",
            f"{self.auth_base_url}/api/v2/token/refresh",
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers={"Accept": "application/json"},
            params={
                "app_key": self.app_key,
                "app_secret": self._secret,
                "refresh_token": self._refresh_token,
                "grant_type": "refresh_token",
            },
        )
        envelope = http.json_object(response)
        code = _code(envelope)
        if response.status_code == 200 and code not in (None, 0):
            raise ChannelAuthError(
                f"TikTok Shop refused the refresh token (code {code}): {_message(envelope)}"
            )
        data = _data(response, envelope)
        try:
            value = str(data["access_token"])
            # An epoch second, on the platform's clock.
            lifetime_s = float(data["access_token_expire_in"]) - time.time()
        except (KeyError, TypeError, ValueError):
            raise ChannelError("TikTok Shop answered the refresh without a token.") from None
        return http.AccessToken.lasting(
            value, lifetime_s=lifetime_s, fetched_at=started, margin_s=REFRESH_MARGIN_S
        )


def _code(envelope: Mapping[str, Any] | None) -> int | None:
    try:
        return int(envelope["code"]) if envelope is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def _message(envelope: Mapping[str, Any] | None) -> str:
    return str((envelope or {}).get("message") or "")[:500]


def _data(response: requests.Response, envelope: Mapping[str, Any] | None) -> dict[str, Any]:
    """The envelope's ``data``, or the error of ``channels.connectors.base`` it stands for."""
    status, code = response.status_code, _code(envelope)
    described = f"HTTP {status}, code {code}: {_message(envelope) or response.text[:200]}"
    if status == 429 or code in RATE_LIMIT_CODES:
        raise ChannelThrottled(
            f"TikTok Shop throttled the call ({described})",
            retry_after_s=http.retry_after_s(response),
        )
    if status in (401, 403) or code in AUTH_CODES:
        raise ChannelAuthError(f"TikTok Shop refused the credentials ({described})")
    if status >= 500 or code is None:
        raise ChannelError(
            f"TikTok Shop answered {described}", retry_after_s=http.retry_after_s(response)
        )
    if code != 0:
        raise TikTokBusinessError(f"TikTok Shop refused the call ({described})", code=code)
    data = (envelope or {}).get("data")
    return data if isinstance(data, dict) else {}
