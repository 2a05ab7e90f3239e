"""Shopify's HTTP dialect: the Admin GraphQL endpoint, its token header, its errors.

``ShopifyClient.graphql`` answers a call's ``data`` or raises the matching error of
``channels.connectors.base``: 401/403 ``ChannelAuthError``; 429 and the THROTTLED error
(§1.4: usually HTTP 200 with no data) ``ChannelThrottled`` with the wait the cost
extensions imply; any other failure ``ChannelError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.connectors import http
from channels.connectors.base import ChannelAuthError, ChannelError, ChannelThrottled

PLATFORM_NAME = "Shopify"
# §1.5: each shop's Admin API is https://{shop}.myshopify.com.
# Calls go nowhere else (channels.connectors.outbound).
API_DOMAINS = ("myshopify.com",)


class ShopifyClient:
    def __init__(self, *, admin_url: str, access_token: str, read_timeout_s: float) -> None:
        # https://{shop}.myshopify.com/admin/api/{version}
        self.admin_url = admin_url
        self.graphql_url = f"{admin_url}/graphql.json"
        self.read_timeout_s = read_timeout_s
        self._headers = {"X-Shopify-Access-Token": access_token, "Accept": "application/json"}

    def rest_pages(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of a REST list (``Link: <…>; rel="next"`` cursors), as JSON objects."""
        pages = []
        url: str | None = f"{self.admin_url}/{path}"
        query: Mapping[str, str] | None = params
        while url is not None:
            response = http.send(
                "GET",
                url,
                platform_name=PLATFORM_NAME,
                api_domains=API_DOMAINS,
                read_timeout_s=self.read_timeout_s,
                headers=self._headers,
                params=query,
            )
            if response.status_code in (401, 403):
                raise ChannelAuthError(
                    f"Shopify refused the access token (HTTP {response.status_code})."
                )
            if response.status_code == 429:
                raise ChannelThrottled(
                    "Shopify throttled the call (HTTP 429).",
                    retry_after_s=http.retry_after_s(response),
                )
            body = http.json_object(response)
            if response.status_code != 200 or body is None:
                raise ChannelError(f"Shopify answered HTTP {response.status_code}.")
            pages.append(body)
            url = response.links.get("next", {}).get("url")
            query = None  # the next page's URL carries its cursor and limit
        return pages

    def graphql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """POST one GraphQL call; its ``data``, or the matching ``ChannelError``."""
        response = http.send(
            "POST",
            self.graphql_url,
            platform_name=PLATFORM_NAME,
            api_domains=API_DOMAINS,
            read_timeout_s=self.read_timeout_s,
            headers=self._headers,
            json={"query": query, "variables": variables},
        )
        retry_after_s = http.retry_after_s(response)
        if response.status_code in (401, 403):
            raise ChannelAuthError(
                f"Shopify refused the access token (HTTP {response.status_code})."
            )
        body = http.json_object(response)
        if response.status_code == 429:
            raise ChannelThrottled(
                "Shopify throttled the call (HTTP 429).",
                retry_after_s=retry_after_s or throttle_wait_s(body),
            )
        if response.status_code != 200 or body is None:
            raise ChannelError(
                f"Shopify answered HTTP {response.status_code}.", retry_after_s=retry_after_s
            )
        errors = body.get("errors")
        if errors:
            if any(_error_code(error) == "THROTTLED" for error in errors):
                raise ChannelThrottled(
                    "Shopify throttled the call (THROTTLED).",
                    retry_after_s=throttle_wait_s(body),
                )
            messages = "; ".join(
                str(error.get("message", error)) if isinstance(error, dict) else str(error)
                for error in (errors if isinstance(errors, list) else [errors])
            )
            raise ChannelError(f"Shopify GraphQL error: {messages}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ChannelError("Shopify answered without data.")
        return data


def _error_code(error: object) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
        return error["extensions"].get("code")
    return None


def throttle_wait_s(body: Mapping[str, Any] | None) -> float | None:
    """Seconds until the bucket holds the requested cost again (§1.4 throttleStatus)."""
    try:
        cost = body["extensions"]["cost"]  # type: ignore[index]
        status = cost["throttleStatus"]
        deficit = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        restore_rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if not restore_rate > 0:
        return None
    # A throttle with the bucket apparently full still deserves a short pause.
    return http.bounded_wait_s(max(deficit / restore_rate, 1 / restore_rate))
