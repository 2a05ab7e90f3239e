"""The ingest's and the push's claims read the rows they claim, not the whole table.

Both run as prepared statements, so after five runs PostgreSQL may plan them once for any
parameters (a generic plan). ``id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` was then
planned as a hash of the claimed ids probed by a sequential scan of the table: at 15,000
receipts a claim of ten took 10 ms, a third of PostgreSQL's time per webhook, and it grew
with every receipt kept. Each test plans its claim as generic, runs it (EXPLAIN ANALYZE),
and counts the rows it read from the claimed table. The plan follows the table's
statistics, so each test leaves them as a busy day would: taken while many rows were
claimable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from channels.models import Listing, PendingPush, WebhookReceipt
from channels.pipeline import ingest, push
from tests import factories

pytestmark = pytest.mark.django_db

OTHER_ROWS = 3000
CLAIMABLE = 5


def _rows_read(sql: str, params: dict[str, Any], *, table: str) -> tuple[int, float]:
    """How many rows the statement returned and how many it read from ``table``, under
    a generic plan."""
    numbered = sql
    for number, name in enumerate(params, start=1):
        numbered = numbered.replace(f"%({name})s", f"${number}")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE claim_under_test AS {numbered}")
        try:
            placeholders = ", ".join(["%s"] * len(params))
            cursor.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_under_test({placeholders})",
                list(params.values()),
            )
            [[plan_document]] = cursor.fetchall()
        finally:
            cursor.execute("DEALLOCATE claim_under_test")
    [document] = json.loads(plan_document) if isinstance(plan_document, str) else plan_document
    root = document["Plan"]
    return int(root["Actual Rows"]), sum(_scanned(root, table))


def _analyze(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def _scanned(node: dict[str, Any], table: str):
    if node.get("Relation Name") == table and "Scan" in node["Node Type"]:
        yield node["Actual Rows"] * node["Actual Loops"]
    for child in node.get("Plans", ()):
        yield from _scanned(child, table)


def test_the_ingest_claim_reads_only_the_receipts_it_claims():
    channel = factories.make_channel()
    now = timezone.now()

    def receipt(number: int, status: str, attempts: int) -> WebhookReceipt:
        return WebhookReceipt(
            channel=channel,
            topic="orders/create",
            dedupe_key=f"delivery-{number}",
            headers={},
            body=b"{}",
            received_at=now,
            status=status,
            error="",
            attempts=attempts,
        )

    # A burst: the statistics are taken while thousands wait (autovacuum's analyze);
    # then all but a few are processed.
    WebhookReceipt.objects.bulk_create(
        receipt(number, WebhookReceipt.Status.RECEIVED, 0)
        for number in range(OTHER_ROWS + CLAIMABLE)
    )
    _analyze("channels_webhookreceipt")
    processed = WebhookReceipt.objects.order_by("id").values_list("id", flat=True)[:OTHER_ROWS]
    WebhookReceipt.objects.filter(id__in=list(processed)).update(
        status=WebhookReceipt.Status.PROCESSED, attempts=1
    )

    claimed, read = _rows_read(
        ingest._CLAIM_NEW_SQL, {"limit": 10}, table="channels_webhookreceipt"
    )

    assert claimed == CLAIMABLE
    # Each claimed receipt is found by the partial index, then updated by its key.
    assert read <= 2 * CLAIMABLE


def test_the_push_claim_reads_only_the_owed_listings_it_claims():
    claimed_channel = factories.make_channel()
    other_channel = factories.make_channel()
    sku = factories.make_sku()

    def owed_listings(channel, count: int) -> None:
        listings = Listing.objects.bulk_create(
            Listing(channel=channel, sku=sku, external_id=f"{channel.pk}-{number}")
            for number in range(count)
        )
        PendingPush.objects.bulk_create(
            PendingPush(listing=listing, channel=channel) for listing in listings
        )

    owed_listings(other_channel, OTHER_ROWS)
    owed_listings(claimed_channel, CLAIMABLE)
    _analyze("channels_pendingpush")

    claimed, read = _rows_read(
        push._CLAIM_SQL,
        {"channel_id": claimed_channel.pk, "lease_s": 30.0, "limit": 10},
        table="channels_pendingpush",
    )

    assert claimed == CLAIMABLE
    # The channel's owed rows by its index, then each claimed one by its key.
    assert read <= 2 * CLAIMABLE
