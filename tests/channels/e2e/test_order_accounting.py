"""Every order accounted for, over real HTTP: events before their order, broken lines,
bodies that cannot be stored.

The simulator delivers Shopify's own payloads, signed, to gunicorn; a Celery worker
ingests and pushes; the test only places orders and watches.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
import requests
from django.db.models import F, Sum

from channels.models import Channel, UnmappedLine, WebhookReceipt
from inventory.models import InventoryEvent, StockLevel
from tests import factories
from tests.channels.e2e.conftest import wait_until, wire_simulated_shop

pytestmark = pytest.mark.slow

ITEM_ID = 7001
VARIANT_ID = 8001


@pytest.fixture
def two_shops(transactional_db, shopify_simulator, nventory_web, nventory_worker):
    """Two shops selling one SKU (10 units) from one location, both shown 10."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    shops = [
        wire_simulated_shop(
            shopify_simulator,
            web_url=nventory_web,
            location=location,
            sku=sku,
            item_id=ITEM_ID,
            variant_id=VARIANT_ID,
        )
        for _ in range(2)
    ]
    _wait_for_shops(shopify_simulator, {shops[0]: 10, shops[1]: 10})
    return sku, shops


def _shown(simulator, channel: Channel) -> int:
    return int(simulator.available(channel.slug, ITEM_ID))


def _committed(sku) -> int:
    return StockLevel.objects.filter(sku=sku).aggregate(total=Sum("committed"))["total"] or 0


def _wait_for_shops(simulator, expected: dict[Channel, int]) -> None:
    wait_until(
        lambda: all(_shown(simulator, channel) == qty for channel, qty in expected.items()),
        timeout_s=30,
        describe=lambda: str(
            {
                "shown": {c.slug: _shown(simulator, c) for c in expected},
                "receipts": list(WebhookReceipt.objects.values("topic", "status", "error")),
            }
        ),
    )


def _receipts(channel: Channel, topic: str, status: str) -> int:
    return WebhookReceipt.objects.filter(channel=channel, topic=topic, status=status).count()


def _age_waiting_receipts(channel: Channel, minutes: int) -> None:
    """Stand in for time passing: the waiting receipts came ``minutes`` earlier."""
    earlier = dt.timedelta(minutes=minutes)
    WebhookReceipt.objects.filter(channel=channel, status="awaiting_order").update(
        received_at=F("received_at") - earlier, awaited_until=F("awaited_until") - earlier
    )


def _order_webhook_id(simulator, channel: Channel) -> str:
    (delivery,) = [d for d in simulator.webhooks(channel.slug) if d["topic"] == "orders/create"]
    return str(delivery["webhook_id"])


def test_a_cancellation_ten_minutes_before_its_order_is_honoured_when_the_order_comes(
    two_shops, shopify_simulator
):
    """The order's first delivery is lost; its cancellation (delivered twice) comes first
    and waits; ten minutes later the order comes: committed, then released at once, and
    both shops end where they started."""
    sku, (store_a, store_b) = two_shops
    placed = shopify_simulator.place_order(
        store_a.slug, [{"variant_id": VARIANT_ID, "quantity": 3}], deliver=False
    )
    shopify_simulator.cancel_order(store_a.slug, placed["order_id"], duplicates=1)
    wait_until(lambda: _receipts(store_a, "orders/cancelled", "awaiting_order") == 1)
    assert _committed(sku) == 0
    _age_waiting_receipts(store_a, minutes=10)

    shopify_simulator.redeliver(store_a.slug, _order_webhook_id(shopify_simulator, store_a))

    wait_until(lambda: _receipts(store_a, "orders/cancelled", "processed") == 1)
    assert _committed(sku) == 0
    kinds = set(
        InventoryEvent.objects.filter(external_reference=str(placed["order_id"])).values_list(
            "kind", flat=True
        )
    )
    assert kinds == {"order_committed", "order_cancelled"}
    _wait_for_shops(shopify_simulator, {store_a: 10, store_b: 10})


def test_a_refund_with_restock_before_its_order_is_honoured_when_the_order_comes(
    two_shops, shopify_simulator
):
    """A refund releasing two of three units comes (twice) before its order: when the order
    comes, one unit stays committed and both shops show nine."""
    sku, (store_a, store_b) = two_shops
    placed = shopify_simulator.place_order(
        store_a.slug, [{"variant_id": VARIANT_ID, "quantity": 3}], deliver=False
    )
    (line_id,) = placed["line_item_ids"]
    shopify_simulator.refund(
        store_a.slug,
        placed["order_id"],
        [{"line_item_id": line_id, "quantity": 2, "restock_type": "cancel"}],
        duplicates=1,
    )
    wait_until(lambda: _receipts(store_a, "refunds/create", "awaiting_order") == 1)
    _age_waiting_receipts(store_a, minutes=10)

    shopify_simulator.redeliver(store_a.slug, _order_webhook_id(shopify_simulator, store_a))

    wait_until(lambda: _receipts(store_a, "refunds/create", "processed") == 1)
    assert _committed(sku) == 1
    _wait_for_shops(shopify_simulator, {store_a: 9, store_b: 9})


def test_a_line_with_a_nul_byte_is_recorded_and_the_valid_line_commits(
    transactional_db, shopify_simulator, nventory_web, nventory_worker
):
    """The line the database cannot store is recorded with its reason; the valid line
    beside it commits, and every shop comes down by its units."""
    location = factories.make_location()
    good_sku = factories.make_sku()
    factories.stock(good_sku, location, 10)
    store_a, store_b = (
        wire_simulated_shop(
            shopify_simulator,
            web_url=nventory_web,
            location=location,
            sku=good_sku,
            item_id=ITEM_ID,
            variant_id=VARIANT_ID,
        )
        for _ in range(2)
    )
    _wait_for_shops(shopify_simulator, {store_a: 10, store_b: 10})
    shopify_simulator.add_items(
        store_a.slug,
        [{"inventory_item_id": 7999, "variant_id": 8999, "sku": "BAD\x00SKU", "available": 5}],
    )

    shopify_simulator.place_order(
        store_a.slug,
        [{"variant_id": VARIANT_ID, "quantity": 2}, {"variant_id": 8999, "quantity": 1}],
    )

    wait_until(lambda: _receipts(store_a, "orders/create", "processed") == 1)
    assert _committed(good_sku) == 2
    (bad_line,) = UnmappedLine.objects.filter(channel=store_a)
    assert "NUL byte" in bad_line.reason and bad_line.quantity == 1
    _wait_for_shops(shopify_simulator, {store_a: 8, store_b: 8})


def _sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested 10,000 deep"),
        pytest.param(
            json.dumps(
                {
                    "id": 1,
                    "line_items": [
                        {"id": 2, "quantity": 10**12, "variant_id": VARIANT_ID, "sku": "X"}
                    ],
                }
            ).encode(),
            id="a quantity of 10^12",
        ),
    ],
)
def test_a_signed_body_that_cannot_be_used_is_quarantined_on_first_receipt(
    two_shops, nventory_web, body
):
    """Signed, so stored and acknowledged; unusable, so quarantined at its first try with
    the reason, stock unchanged."""
    sku, (store_a, _) = two_shops
    response = requests.post(
        f"{nventory_web}/webhooks/shopify/{store_a.slug}/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": f"hostile-{len(body)}",
            "X-Shopify-Hmac-Sha256": _sign(store_a.webhook_secret, body),
        },
        timeout=10,
    )
    assert response.status_code == 200
    receipt = wait_until(
        lambda: WebhookReceipt.objects.filter(
            channel=store_a, status=WebhookReceipt.Status.QUARANTINED
        ).first()
    )
    assert receipt.attempts == 1 and receipt.error
    assert _committed(sku) == 0
