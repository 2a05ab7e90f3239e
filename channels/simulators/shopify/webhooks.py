"""Shopify's webhooks (§1.1): REST-shaped payloads, signed headers, the retry policy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import uuid
from typing import Any

from channels.simulators.harness import Delivery, RetryPolicy
from channels.simulators.shopify.state import Item, Level, Shop, level_gid

# §1.1: 1 s to connect, 5 s for the whole answer, 8 retries with exponential backoff; an
# Admin-API subscription is deleted after 8 failures in a row.
CONNECT_TIMEOUT_S = 1.0
RESPONSE_TIMEOUT_S = 5.0
MAX_RETRIES = 8

# Shop-independent, so ids never collide across shops or resets.
_event_ids = itertools.count(7_000_000_001)


def retry_policy(shop: Shop) -> RetryPolicy:
    """§1.1: the schedule is 8 retries over about 4 hours; ``webhook_retry_base_s`` (1 s by
    default) compresses it for tests and demos, as does advancing the clock."""
    return RetryPolicy(
        retries=MAX_RETRIES,
        base_s=shop.settings.webhook_retry_base_s,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        response_timeout_s=RESPONSE_TIMEOUT_S,
        remove_subscription_when_exhausted=True,
    )


def signature(secret: str, body: bytes) -> str:
    """§1.1: base64 of the HMAC-SHA256 of the raw body, keyed with the app secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def new_delivery(
    shop: Shop, topic: str, payload: dict[str, Any], now: float, now_iso: str
) -> Delivery:
    """A signed delivery to the shop's current address (lock held); nothing is sent yet."""
    body = json.dumps(payload).encode()
    webhook_id = str(uuid.uuid4())
    return Delivery(
        webhook_id=webhook_id,
        topic=topic,
        url=shop.settings.webhook_url,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop.domain,
            "X-Shopify-API-Version": shop.settings.api_version,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": str(next(_event_ids)),
            "X-Shopify-Triggered-At": now_iso,
            "X-Shopify-Hmac-Sha256": signature(shop.settings.webhook_secret, body),
        },
        body=body,
        created_at=now,
    )


def level_payload(item: Item, location_id: int, level: Level) -> dict[str, Any]:
    """§1.1: ``inventory_levels/update``."""
    return {
        "inventory_item_id": item.inventory_item_id,
        "location_id": location_id,
        "available": level.available,
        "updated_at": level.updated_at,
        "admin_graphql_api_id": level_gid(location_id, item.inventory_item_id),
    }
