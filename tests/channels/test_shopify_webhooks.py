"""Shopify webhook signature, envelope and payload parsing (CHANNEL_APIS.md §1.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from channels.connectors.shopify.webhooks import (
    parse_shopify_webhook,
    shopify_webhook_envelope,
    verify_shopify_webhook,
)
from channels.connectors.types import MessageKind, StockEffect, WebhookParseError

SECRET = "shpss_test_secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def order_payload(**overrides) -> dict:
    payload = {
        "id": 5678901234,
        "name": "#1001",
        "created_at": "2025-04-22T14:30:00-05:00",
        "line_items": [
            {
                "id": 111,
                "product_id": 9554194432293,
                "variant_id": 123456789,
                "sku": "TSHIRT-001",
                "quantity": 2,
            }
        ],
    }
    payload.update(overrides)
    return payload


def refund_payload(*refund_line_items: dict) -> dict:
    return {
        "id": 929361464,
        "order_id": 5678901234,
        "created_at": "2025-04-23T10:00:00-05:00",
        "refund_line_items": list(refund_line_items),
    }


def refund_line(restock_type: object = "return", quantity: int = 1, **fields) -> dict:
    line = {
        "id": 1,
        "line_item_id": 111,
        "quantity": quantity,
        "restock_type": restock_type,
        "location_id": 487838322,
        "line_item": {"id": 111, "variant_id": 123456789, "sku": "TSHIRT-001"},
    }
    line.update(fields)
    return line


def body_of(payload: object) -> bytes:
    return json.dumps(payload).encode()


# --- signature -----------------------------------------------------------------------------


def test_correct_signature_verifies():
    body = body_of(order_payload())
    assert verify_shopify_webhook(
        secret=SECRET, headers={"X-Shopify-Hmac-Sha256": sign(body)}, body=body
    )


def test_header_name_is_case_insensitive():
    body = b'{"id": 1}'
    assert verify_shopify_webhook(
        secret=SECRET, headers={"x-shopify-hmac-sha256": sign(body)}, body=body
    )


def test_signature_is_over_the_raw_bytes_not_the_json():
    """Re-serialised JSON with the same meaning is a different message."""
    body = b'{"id": 1, "line_items": []}'
    reformatted = b'{"id":1,"line_items":[]}'
    assert not verify_shopify_webhook(
        secret=SECRET, headers={"X-Shopify-Hmac-Sha256": sign(body)}, body=reformatted
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Shopify-Hmac-Sha256": ""},
        {"X-Shopify-Hmac-Sha256": "not base64 at all!"},
        {"X-Shopify-Hmac-Sha256": "ünïcödé"},
        {"X-Shopify-Hmac-Sha256": sign(b"another body")},
        {"X-Shopify-Hmac-Sha256": sign(b'{"id": 1}', secret="another secret")},
    ],
    ids=["missing", "empty", "garbled", "non-ascii", "other-body", "other-secret"],
)
def test_missing_or_wrong_signature_does_not_verify(headers):
    assert not verify_shopify_webhook(secret=SECRET, headers=headers, body=b'{"id": 1}')


def test_empty_secret_verifies_nothing():
    """Anyone can compute an HMAC with an empty key."""
    body = b'{"id": 1}'
    assert not verify_shopify_webhook(
        secret="", headers={"X-Shopify-Hmac-Sha256": sign(body, secret="")}, body=body
    )


# --- envelope ------------------------------------------------------------------------------


def test_envelope_reads_topic_and_webhook_id():
    envelope = shopify_webhook_envelope(
        {"x-shopify-topic": "orders/create", "X-Shopify-Webhook-Id": "b54557e4-bdd9"}
    )
    assert (envelope.topic, envelope.dedupe_key) == ("orders/create", "b54557e4-bdd9")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Shopify-Topic": "orders/create"},
        {"X-Shopify-Webhook-Id": "abc"},
        {"X-Shopify-Topic": " ", "X-Shopify-Webhook-Id": "abc"},
    ],
)
def test_envelope_without_topic_or_webhook_id_is_a_parse_error(headers):
    with pytest.raises(WebhookParseError, match="Missing header"):
        shopify_webhook_envelope(headers)


# --- orders --------------------------------------------------------------------------------


def test_order_created_becomes_order_placed_with_its_lines():
    message = parse_shopify_webhook("orders/create", body_of(order_payload()))
    assert message.kind == MessageKind.ORDER_PLACED
    assert message.reference == "5678901234"
    assert message.occurred_at is not None
    [line] = message.lines
    assert line.reference == "111"
    assert line.quantity == 2
    assert dict(line.identifiers) == {
        "variant_id": "123456789",
        "sku": "TSHIRT-001",
        "product_id": "9554194432293",
    }


def test_order_line_identifiers_keep_only_those_present():
    payload = order_payload(
        line_items=[{"id": 7, "quantity": 1, "variant_id": None, "sku": "", "title": "Gift"}]
    )
    [line] = parse_shopify_webhook("orders/create", body_of(payload)).lines
    assert dict(line.identifiers) == {}


def test_order_cancelled_becomes_order_cancelled():
    message = parse_shopify_webhook(
        "orders/cancelled", body_of(order_payload(cancelled_at="2026-11-27T10:05:00-05:00"))
    )
    assert message.kind == MessageKind.ORDER_CANCELLED
    assert [line.reference for line in message.lines] == ["111"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (body_of({"line_items": []}), "id is missing"),
        (body_of(order_payload(id={"nested": 1})), "must be an id"),
        (body_of(order_payload(id=True)), "must be an id"),
        (body_of(order_payload(line_items="none")), "line_items must be a list"),
        (body_of(order_payload(line_items=[5])), "expected a JSON object"),
        (body_of(order_payload(line_items=[{"quantity": 1}])), "id is missing"),
        (body_of(order_payload(line_items=[{"id": 1, "quantity": -1}])), "not be negative"),
        (body_of(order_payload(line_items=[{"id": 1, "quantity": 1.5}])), "whole number"),
        (body_of(order_payload(line_items=[{"id": 1, "quantity": "2"}])), "whole number"),
        (body_of(order_payload(line_items=[{"id": 1}])), "whole number"),
        (body_of(order_payload(line_items=[{"id": 1, "quantity": 10**12}])), "beyond"),
        (
            body_of(order_payload(line_items=[{"id": 1, "quantity": 1}] * 2)),
            "share one line item id",
        ),
    ],
)
def test_malformed_order_is_a_parse_error(body, message):
    with pytest.raises(WebhookParseError, match=message):
        parse_shopify_webhook("orders/create", body)


# --- refunds -------------------------------------------------------------------------------


def test_refund_lines_carry_what_their_restock_type_does_to_stock():
    """return: units back on hand; no_restock: no stock moves; cancel: a release."""
    payload = refund_payload(
        refund_line("return", quantity=1),
        refund_line("no_restock", quantity=2, id=2, line_item_id=222, line_item={"id": 222}),
        refund_line("cancel", quantity=1, id=3, line_item_id=333, line_item={"id": 333}),
    )
    message = parse_shopify_webhook("refunds/create", body_of(payload))
    assert message.kind == MessageKind.REFUND
    assert (message.reference, message.sub_reference) == ("5678901234", "929361464")
    returned, not_restocked, cancelled = message.lines
    assert (returned.reference, returned.quantity, returned.stock_effect) == (
        "111",
        1,
        StockEffect.RETURN,
    )
    assert dict(returned.identifiers) == {"variant_id": "123456789", "sku": "TSHIRT-001"}
    assert not_restocked.stock_effect == StockEffect.NONE
    assert cancelled.stock_effect == StockEffect.RELEASE


def test_legacy_restock_counts_as_a_return():
    message = parse_shopify_webhook(
        "refunds/create", body_of(refund_payload(refund_line("legacy_restock")))
    )
    assert message.lines[0].stock_effect == StockEffect.RETURN


def test_refund_without_line_items_refunds_no_stock():
    message = parse_shopify_webhook("refunds/create", body_of(refund_payload()))
    assert message.kind == MessageKind.REFUND
    assert message.lines == ()


def test_one_line_item_refunded_in_two_parts_is_one_line():
    payload = refund_payload(refund_line(quantity=1), refund_line(quantity=2, id=2))
    [line] = parse_shopify_webhook("refunds/create", body_of(payload)).lines
    assert (line.reference, line.quantity) == ("111", 3)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"order_id": 1, "refund_line_items": []}, "id is missing"),
        ({"id": 9, "refund_line_items": []}, "order_id is missing"),
        ({"id": 9, "order_id": 1}, "refund_line_items must be a list"),
        (refund_payload(refund_line(quantity=-1)), "not be negative"),
        (refund_payload(refund_line(restock_type=3)), "restock_type must be a string"),
        (refund_payload(refund_line(line_item_id=None, line_item=None)), "id is missing"),
        (refund_payload(refund_line(line_item="x")), "expected a JSON object"),
        (
            refund_payload(refund_line("return"), refund_line("no_restock", id=2)),
            "two restock types",
        ),
    ],
)
def test_malformed_refund_is_a_parse_error(payload, message):
    with pytest.raises(WebhookParseError, match=message):
        parse_shopify_webhook("refunds/create", body_of(payload))


# --- inventory levels ----------------------------------------------------------------------


def test_inventory_level_update_becomes_inventory_changed():
    payload = {
        "inventory_item_id": 30322695,
        "location_id": 124656943,
        "available": 7,
        "updated_at": "2025-04-22T14:30:00-05:00",
    }
    message = parse_shopify_webhook("inventory_levels/update", body_of(payload))
    assert message.kind == MessageKind.INVENTORY_CHANGED
    assert message.reference == "30322695"
    [line] = message.lines
    assert line.quantity == 7
    assert dict(line.identifiers) == {"inventory_item_id": "30322695", "location_id": "124656943"}


def test_negative_available_is_a_figure_not_an_error():
    """Shopify shows a negative level when it oversold."""
    payload = {"inventory_item_id": 1, "available": -2}
    [line] = parse_shopify_webhook("inventory_levels/update", body_of(payload)).lines
    assert line.quantity == -2


def test_untracked_inventory_level_is_ignored():
    payload = {"inventory_item_id": 1, "available": None}
    message = parse_shopify_webhook("inventory_levels/update", body_of(payload))
    assert message.kind == MessageKind.IGNORED


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"available": 3}, "inventory_item_id is missing"),
        ({"inventory_item_id": 1, "available": "3"}, "whole number"),
        ({"inventory_item_id": 1, "available": 2.5}, "whole number"),
        ({"inventory_item_id": -4, "available": 2}, "must be positive"),
    ],
)
def test_malformed_inventory_level_is_a_parse_error(payload, message):
    with pytest.raises(WebhookParseError, match=message):
        parse_shopify_webhook("inventory_levels/update", body_of(payload))


# --- other topics --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"id": 1}', b"not even json"])
def test_other_topics_are_ignored_without_reading_the_body(body):
    message = parse_shopify_webhook("products/update", body)
    assert message.kind == MessageKind.IGNORED


def test_a_line_with_an_unusable_identifier_is_marked_and_its_order_still_parses():
    """A NUL byte (PostgreSQL cannot store it) or an identifier of the wrong type spoils
    the line, with the reason; the order and its other lines parse."""
    payload = order_payload(
        line_items=[
            {"id": 1, "quantity": 1, "variant_id": 11, "sku": "GOOD"},
            {"id": 2, "quantity": 2, "variant_id": 12, "sku": "BAD\x00SKU"},
            {"id": 3, "quantity": 3, "variant_id": [13]},
        ]
    )
    good, nul, wrong_type = parse_shopify_webhook("orders/create", body_of(payload)).lines
    assert good.problem == ""
    assert "NUL byte" in nul.problem and "\x00" not in nul.identifiers["sku"]
    assert "string or a number" in wrong_type.problem
