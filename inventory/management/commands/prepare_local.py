"""Get a fresh local system ready to use: an operator account and a small demo catalog.

Run by ``make run`` after ``migrate``. Safe to run any number of times: the password is
shown only when the account is created, and the demo stock is received with fixed
idempotency keys, so a second run changes nothing.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from inventory import services
from inventory.models import EventSource, InventoryEvent, Location, Sku

OPERATOR_USERNAME = "operator"
DEFAULT_WEB_ADDR = "127.0.0.1:8000"


@dataclass(frozen=True)
class DemoSku:
    code: str
    name: str
    category: str
    # Units received per location code; a location left out holds none of this SKU.
    stock: dict[str, int]


WAREHOUSE_CODE = "WH-MAIN"
FBA_CODE = "AMZ-FBA-US"
DEMO_LOCATIONS = (
    (WAREHOUSE_CODE, "Main warehouse", Location.Kind.WAREHOUSE),
    (FBA_CODE, "Amazon FBA (US)", Location.Kind.MARKETPLACE_FULFILLED),
)
DEMO_SKUS = (
    DemoSku(
        "TSHIRT-BLK-M", "Organic T-shirt, black, M", "Apparel", {WAREHOUSE_CODE: 120, FBA_CODE: 40}
    ),
    DemoSku(
        "TSHIRT-BLK-L", "Organic T-shirt, black, L", "Apparel", {WAREHOUSE_CODE: 80, FBA_CODE: 25}
    ),
    DemoSku("HOODIE-GRY-M", "Zip hoodie, grey, M", "Apparel", {WAREHOUSE_CODE: 35}),
    DemoSku("MUG-CER-350", "Ceramic mug 350 ml", "Drinkware", {WAREHOUSE_CODE: 200, FBA_CODE: 60}),
    DemoSku("BOTTLE-STL-750", "Steel bottle 750 ml", "Drinkware", {WAREHOUSE_CODE: 48}),
    DemoSku("CAP-NVY", "Baseball cap, navy", "Accessories", {WAREHOUSE_CODE: 3}),
    DemoSku("TOTE-CNV", "Canvas tote bag", "Accessories", {WAREHOUSE_CODE: 150, FBA_CODE: 30}),
    # Out of stock everywhere: shows how a sold-out SKU looks on every surface.
    DemoSku("CHARGER-USB-C", "USB-C charger 30 W", "Electronics", {}),
)


def receipt_key(sku_code: str, location_code: str) -> str:
    """The fixed idempotency key of one demo receipt."""
    return f"demo:receipt:{sku_code}:{location_code}"


def base_url() -> str:
    """The address ``runserver`` listens on (Procfile: ``WEB_ADDR``), as a URL."""
    address = os.environ.get("WEB_ADDR") or DEFAULT_WEB_ADDR
    if address.isdigit():  # runserver also accepts a bare port
        address = f"127.0.0.1:{address}"
    return f"http://{address}"


class Command(BaseCommand):
    help = "Create the operator account and the demo catalog on first start; print the URLs."

    def handle(self, *args: Any, **options: Any) -> None:
        self._ensure_operator()
        self._ensure_demo_catalog()
        self._print_urls()

    def _ensure_operator(self) -> None:
        user_model = get_user_model()
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            name = existing.get_username()
            self.stdout.write(f"Operator account exists ({name}); its password is not shown.")
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=OPERATOR_USERNAME, email="", password=password
        )
        rule = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"{rule}\n"
                f"  Operator account created. This password is shown ONCE:\n\n"
                f"    username: {OPERATOR_USERNAME}\n"
                f"    password: {password}\n\n"
                f"  Change it after logging in (admin > Change password).\n"
                f"{rule}"
            )
        )

    def _ensure_demo_catalog(self) -> None:
        demo_started = Location.objects.filter(code=WAREHOUSE_CODE).exists()
        if not demo_started and Sku.objects.exists():
            count = Sku.objects.count()
            self.stdout.write(f"Catalog present ({count} SKUs): demo catalog not loaded.")
            return
        # Each step is idempotent on its own, so an interrupted first load is completed
        # by the next run instead of being skipped.
        locations = {}
        created = 0
        for code, name, kind in DEMO_LOCATIONS:
            locations[code], was_created = Location.objects.get_or_create(
                code=code, defaults={"name": name, "kind": kind}
            )
            created += was_created
        for demo in DEMO_SKUS:
            sku, was_created = Sku.objects.get_or_create(
                code=demo.code, defaults={"name": demo.name, "category": demo.category}
            )
            created += was_created
            for location_code, quantity in demo.stock.items():
                key = receipt_key(demo.code, location_code)
                if InventoryEvent.objects.filter(idempotency_key=key).exists():
                    continue
                services.receive_stock(
                    sku_id=sku.pk,
                    location_id=locations[location_code].pk,
                    quantity=quantity,
                    context=services.EventContext(
                        idempotency_key=key,
                        source=EventSource.SYSTEM,
                        actor="prepare_local",
                        reason="Demo catalog",
                    ),
                )
                created += 1
        summary = f"{len(DEMO_SKUS)} SKUs at {len(DEMO_LOCATIONS)} locations"
        if created:
            self.stdout.write(self.style.SUCCESS(f"Demo catalog loaded: {summary}."))
        else:
            self.stdout.write(f"Demo catalog already loaded ({summary}).")

    def _print_urls(self) -> None:
        base = base_url()
        self.stdout.write(
            "\n"
            f"  Admin:     {base}/admin/\n"
            f"  API:       {base}/api/v1/\n"
            f"  API docs:  {base}/api/docs/\n"
        )
