"""Sales of the last units while the velocity guard raises and lowers the buffer, on real
connections.

Twelve threads, each with its own database connection, sell one unit at a time of a SKU
with 60 units on two channels, and after each sale run the guard as ingest does once a sale
commits; another thread edits the spiking channel's buffer rule and lowers the guard's rises
as the scheduled sweep does. The rule edits and the rises take the rule's lock and then
outbox rows, the sales the stock row and then outbox rows: nothing may deadlock, no sale
may take a unit that is not there, and the rises must be in the rule's history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connections
from django.db.models import Sum
from django.utils import timezone

from channels import selectors, services
from channels.models import BufferRule
from channels.pipeline import velocity
from inventory import services as inventory_services
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories

STOCK = 60
ATTEMPTS = 150
SELLERS = 12

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sales_while_the_guard_rises_and_falls_never_oversell(settings):
    settings.VELOCITY_GUARD_UNITS_PER_MIN = 6
    settings.VELOCITY_GUARD_WINDOW_S = 60
    settings.VELOCITY_GUARD_COVER_S = 30
    settings.VELOCITY_GUARD_HOLD_S = 0
    warehouse = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, warehouse, STOCK)
    tiktok = factories.make_channel(locations=[warehouse], slug="tiktok")
    # Its own limit, far above what it sells here: only TikTok Shop's guard rises.
    shopify = factories.make_channel(
        locations=[warehouse], slug="shopify", platform_settings={"velocity_units_per_min": 1000}
    )
    tiktok_listing = factories.make_listing(channel=tiktok, sku=sku)
    shopify_listing = factories.make_listing(channel=shopify, sku=sku)
    channel_rule = factories.make_buffer_rule(channel=tiktok, fixed_units=1)
    start = threading.Barrier(SELLERS + 1)
    selling = threading.Event()
    selling.set()
    attempts = itertools.count()

    def seller(number: int) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        channel = tiktok if number % 4 else shopify  # three sales in four on TikTok Shop
        try:
            start.wait()
            while (attempt := next(attempts)) < ATTEMPTS:
                try:
                    inventory_services.commit_order(
                        sku_id=sku.pk,
                        location_id=warehouse.pk,
                        quantity=1,
                        context=inventory_services.EventContext(
                            idempotency_key=f"{channel.slug}:order:{attempt}:commit",
                            source="channel",
                            actor=channel.slug,
                        ),
                    )
                except inventory_services.InsufficientStock:
                    outcomes["refused"] += 1
                    continue
                outcomes["sold"] += 1
                velocity.observe_sales(channel=channel, sku_ids=[sku.pk])
                listed = selectors.listed_quantities(channel=tiktok, listings=[tiktok_listing])
                assert 0 <= listed[tiktok_listing.pk] <= STOCK
            return outcomes
        finally:
            connections.close_all()

    def operator() -> int:
        edits = 0
        try:
            start.wait()
            while selling.is_set():
                fields = services.BufferRuleFields.of(BufferRule.objects.get(pk=channel_rule.pk))
                services.update_buffer_rule(
                    rule_id=channel_rule.pk,
                    fields=dataclasses.replace(fields, percent=Decimal(edits % 3)),
                )
                velocity.lower_spent_rises(now=timezone.now() + dt.timedelta(hours=1))
                edits += 1
            return edits
        finally:
            connections.close_all()

    with ThreadPoolExecutor(SELLERS + 1) as pool:
        edits = pool.submit(operator)
        sales = [pool.submit(seller, number) for number in range(SELLERS)]
        try:
            outcomes = sum((future.result() for future in sales), Counter())
        finally:
            # A seller that failed must not leave the operator editing forever.
            selling.clear()
        assert edits.result() > 0

    assert outcomes == {"sold": STOCK, "refused": ATTEMPTS - STOCK}
    level = StockLevel.objects.get(sku=sku, location=warehouse)
    assert (level.on_hand, level.committed, level.reserved) == (STOCK, STOCK, 0)
    committed = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert committed.aggregate(units=Sum("delta_committed"))["units"] == STOCK
    # The guard rose on TikTok Shop, and every rise says why in the rule's history.
    rises = BufferRule.history.filter(
        channel_id=tiktok.pk, sku_id=sku.pk, history_change_reason__contains="holds back"
    )
    assert rises.exists()
    assert all(
        r.history_change_reason.startswith("Velocity guard: ") and r.velocity_units > 0
        for r in rises
    )
    assert not BufferRule.history.filter(channel_id=shopify.pk).exists()
    listed = selectors.listed_quantities(channel=tiktok, listings=[tiktok_listing])
    assert listed[tiktok_listing.pk] == 0
    assert selectors.explain_listing(listing=shopify_listing).listed == 0
