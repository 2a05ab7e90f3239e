"""Get a fresh local system ready to use: an operator account and a small demo catalog.

Run by ``make run`` after ``migrate``. Safe to run any number of times: the password is
shown only when the account is created, and the demo stock is received with fixed
idempotency keys, so a second run changes nothing. With ``--simulator-seed-file`` it also
wires a demo Shopify channel, which is why it lives in ``channels`` (the app that may
import both the stock and the channels).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from bundles import services as bundle_services
from channels import services
from channels.models import Channel
from inventory import services as inventory_services
from inventory.models import EventSource, InventoryEvent, Location, Sku

OPERATOR_USERNAME = "operator"
DEFAULT_WEB_ADDR = "127.0.0.1:8000"
DEFAULT_SIMULATOR_PORT = "8765"
DEMO_CHANNEL_SLUG = "demo-shopify"
DEMO_SHOP = "demo-store"
DEMO_WALMART_CHANNEL_SLUG = "demo-walmart"
DEMO_WALMART_SELLER = "demo-seller"
DEFAULT_WALMART_SIMULATOR_PORT = "8768"
DEFAULT_AMAZON_SIMULATOR_PORT = "8766"
DEMO_EBAY_CHANNEL_SLUG = "demo-ebay"
DEMO_EBAY_SELLER = "demo-ebay-seller"
DEFAULT_EBAY_SIMULATOR_PORT = "8769"
DEFAULT_SQS_PORT = "8767"
DEFAULT_TIKTOK_SIMULATOR_PORT = "8770"
DEMO_TIKTOK_CHANNEL_SLUG = "demo-tiktok"
DEMO_TIKTOK_SHOP = "demo-tiktok-shop"
DEMO_AMAZON_SLUG = "demo-amazon"
DEMO_AMAZON_SELLER = "DEMOSELLER1"
# moto's account id: its queue URLs are http://host:port/<account>/<name>.
SQS_ACCOUNT = "123456789012"


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


@dataclass(frozen=True)
class DemoBundle:
    code: str
    name: str
    category: str
    # (component code, units of it in one bundle)
    lines: tuple[tuple[str, int], ...]


# Sold on every channel beside the single SKUs: a set of two products, and one product sold
# by the pair (a 1:many listing). Their stock is their components'.
DEMO_BUNDLES = (
    DemoBundle(
        "GIFT-SET-TEE-MUG",
        "Gift set: T-shirt M and mug",
        "Gift sets",
        (("TSHIRT-BLK-M", 1), ("MUG-CER-350", 1)),
    ),
    DemoBundle(
        "MUG-CER-350-2PK", "Ceramic mug 350 ml, pack of two", "Drinkware", (("MUG-CER-350", 2),)
    ),
)

DEMO_SKU_CODES = [demo.code for demo in DEMO_SKUS] + [bundle.code for bundle in DEMO_BUNDLES]

# Each demo channel holds back a share of the ATS, as the sync article suggests: less where
# the sync is fast and proven (Shopify), more where processing lags (Walmart) or demand can
# spike (TikTok Shop).
DEMO_CHANNEL_BUFFER_PERCENT = {
    "demo-shopify": Decimal(5),
    "demo-amazon": Decimal(10),
    "demo-walmart": Decimal(15),
    "demo-ebay": Decimal(10),
    "demo-tiktok": Decimal(30),
}


def receipt_key(sku_code: str, location_code: str) -> str:
    """The fixed idempotency key of one demo receipt."""
    return f"demo:receipt:{sku_code}:{location_code}"


def base_url() -> str:
    """The address ``runserver`` listens on (Procfile: ``WEB_ADDR``), as a URL."""
    address = os.environ.get("WEB_ADDR") or DEFAULT_WEB_ADDR
    if address.isdigit():  # runserver also accepts a bare port
        address = f"127.0.0.1:{address}"
    return f"http://{address}"


def amazon_simulator_url() -> str:
    """Where the Procfile's Amazon simulator listens (``AMAZON_SIMULATOR_PORT``)."""
    port = os.environ.get("AMAZON_SIMULATOR_PORT") or DEFAULT_AMAZON_SIMULATOR_PORT
    return f"http://127.0.0.1:{port}"


def sqs_url() -> str:
    """Where the Procfile's SQS server (moto) listens (``SQS_PORT``)."""
    return f"http://127.0.0.1:{os.environ.get('SQS_PORT') or DEFAULT_SQS_PORT}"


def walmart_simulator_url() -> str:
    """Where the Procfile's Walmart simulator listens (``WALMART_SIMULATOR_PORT``)."""
    port = os.environ.get("WALMART_SIMULATOR_PORT") or DEFAULT_WALMART_SIMULATOR_PORT
    return f"http://127.0.0.1:{port}"


def ebay_simulator_url() -> str:
    """Where the Procfile's eBay simulator listens (``EBAY_SIMULATOR_PORT``)."""
    port = os.environ.get("EBAY_SIMULATOR_PORT") or DEFAULT_EBAY_SIMULATOR_PORT
    return f"http://127.0.0.1:{port}"


def tiktok_simulator_url() -> str:
    """Where the Procfile's TikTok Shop simulator listens (``TIKTOK_SIMULATOR_PORT``)."""
    port = os.environ.get("TIKTOK_SIMULATOR_PORT") or DEFAULT_TIKTOK_SIMULATOR_PORT
    return f"http://127.0.0.1:{port}"


def simulator_url() -> str:
    """Where the Procfile's Shopify simulator listens (``SHOPIFY_SIMULATOR_PORT``)."""
    return f"http://127.0.0.1:{os.environ.get('SHOPIFY_SIMULATOR_PORT') or DEFAULT_SIMULATOR_PORT}"


def _list_demo_skus_by_code(channel: Channel, *, product_ids: bool = False) -> None:
    """One listing per demo SKU on the channel, its external id and SKU the SKU's code
    (with ``product_ids``, a product id ``P-<code>`` too, for platforms that key writes by
    product)."""
    for sku in Sku.objects.filter(code__in=DEMO_SKU_CODES):
        services.create_listing(
            fields=services.ListingFields(
                channel_id=channel.pk,
                sku_id=sku.pk,
                external_id=sku.code,
                external_sku=sku.code,
                extra_identifiers={"product_id": f"P-{sku.code}"} if product_ids else {},
            )
        )


def _write_seed_section(seed_file: Path, platform: str, section: dict[str, Any]) -> None:
    """Add (or replace) one platform's tenants in the simulators' seed file, which the
    Shopify channel writes first. It holds the demo tenants' secrets: readable by its owner
    only."""
    seed = json.loads(seed_file.read_text()) if seed_file.exists() else {}
    seed[platform] = section
    seed_file.parent.mkdir(parents=True, exist_ok=True)
    seed_file.write_text(json.dumps(seed, indent=2))
    seed_file.chmod(0o600)


class Command(BaseCommand):
    help = "Create the operator account and the demo catalog on first start; print the URLs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--simulator-seed-file",
            type=Path,
            help="Also wire a demo Shopify channel to the simulator, and write here the "
            "shop the simulator must create at start (python -m channels.simulators --seed-file).",
        )

    def handle(self, *args: Any, simulator_seed_file: Path | None, **options: Any) -> None:
        self._ensure_operator()
        self._ensure_demo_catalog()
        if simulator_seed_file is not None:
            self._ensure_demo_shopify_channel(simulator_seed_file)
            self._ensure_demo_walmart_channel(simulator_seed_file)
            self._ensure_demo_amazon_channel(simulator_seed_file)
            self._ensure_demo_ebay_channel(simulator_seed_file)
            self._ensure_demo_tiktok_channel(simulator_seed_file)
            self._ensure_demo_buffers()
        self._print_urls(with_simulator=simulator_seed_file is not None)

    def _ensure_demo_buffers(self) -> None:
        """Each demo channel's share held back (``DEMO_CHANNEL_BUFFER_PERCENT``), set once:
        an operator's own rule is never overwritten."""
        for slug, percent in DEMO_CHANNEL_BUFFER_PERCENT.items():
            channel = Channel.objects.filter(slug=slug).first()
            if (
                channel is None
                or channel.buffer_rules.filter(sku__isnull=True, listing__isnull=True).exists()
            ):
                continue
            services.create_buffer_rule(
                fields=services.BufferRuleFields(channel_id=channel.pk, percent=percent)
            )
            self.stdout.write(f"Demo buffer: {channel.slug} holds back {percent}% of the ATS.")

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
                inventory_services.receive_stock(
                    sku_id=sku.pk,
                    location_id=locations[location_code].pk,
                    quantity=quantity,
                    context=inventory_services.EventContext(
                        idempotency_key=key,
                        source=EventSource.SYSTEM,
                        actor="prepare_local",
                        reason="Demo catalog",
                    ),
                )
                created += 1
        for bundle in DEMO_BUNDLES:
            if Sku.objects.filter(code=bundle.code).exists():
                continue
            components = {sku.code: sku for sku in Sku.objects.filter(code__in=dict(bundle.lines))}
            bundle_services.create_bundle(
                code=bundle.code,
                name=bundle.name,
                category=bundle.category,
                lines=[(components[code], units) for code, units in bundle.lines],
            )
            created += 1
        summary = (
            f"{len(DEMO_SKUS)} SKUs and {len(DEMO_BUNDLES)} bundles at "
            f"{len(DEMO_LOCATIONS)} locations"
        )
        if created:
            self.stdout.write(self.style.SUCCESS(f"Demo catalog loaded: {summary}."))
        else:
            self.stdout.write(f"Demo catalog already loaded ({summary}).")

    def _ensure_demo_shopify_channel(self, seed_file: Path) -> None:
        """A Shopify channel on the local simulator, listing every demo SKU.

        The simulator keeps its state in memory, so the shop is written out on every start
        for the simulator to create again; the channel itself is created once.
        """
        warehouse = Location.objects.filter(code=WAREHOUSE_CODE).first()
        channel = Channel.objects.filter(slug=DEMO_CHANNEL_SLUG).first()
        if channel is None:
            channel = services.create_channel(
                fields=services.ChannelFields(
                    platform=Channel.Platform.SHOPIFY,
                    name="Demo Shopify store (simulator)",
                    slug=DEMO_CHANNEL_SLUG,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=f"{simulator_url()}/shops/{DEMO_SHOP}",
                    credentials={"access_token": f"shpat_{secrets.token_hex(16)}"},
                    rate_limit_per_s=20,
                    platform_settings={"api_version": "2026-01", "location_id": 1},
                ),
                webhook_secret=secrets.token_urlsafe(24),
                location_ids=[warehouse.pk] if warehouse is not None else [],
            )
            for number, sku in enumerate(Sku.objects.filter(code__in=DEMO_SKU_CODES), start=1):
                services.create_listing(
                    fields=services.ListingFields(
                        channel_id=channel.pk,
                        sku_id=sku.pk,
                        external_id=str(1000 + number),
                        external_sku=sku.code,
                        extra_identifiers={"variant_id": str(2000 + number)},
                    )
                )
            self.stdout.write(self.style.SUCCESS(f"Demo Shopify channel created: {channel.slug}"))
        items = [
            {
                "inventory_item_id": int(listing.external_id),
                "variant_id": int(listing.extra_identifiers["variant_id"]),
                "sku": listing.external_sku,
                "available": 0,
            }
            for listing in channel.listings.filter(extra_identifiers__has_key="variant_id")
        ]
        seed = {
            "shops": [
                {
                    "shop": DEMO_SHOP,
                    "access_token": channel.credentials.get("access_token", ""),
                    "webhook_url": f"{base_url()}/webhooks/shopify/{channel.slug}/",
                    "webhook_secret": channel.webhook_secret,
                    "api_version": "2026-01",
                    "location_id": 1,
                    "items": items,
                }
            ]
        }
        seed_file.parent.mkdir(parents=True, exist_ok=True)
        seed_file.write_text(json.dumps(seed, indent=2))
        seed_file.chmod(0o600)  # it holds the demo store's token and webhook secret
        # The simulator starts empty: every listing is owed its quantity again.
        services.owe_channel_full_sync(channel_id=channel.pk)

    def _ensure_demo_walmart_channel(self, seed_file: Path) -> None:
        """A Walmart channel on the local simulator, listing every demo SKU by its code.

        Its seller is added to the seed file the Shopify shop was written to, for the same
        reason: the simulator keeps its state in memory.
        """
        warehouse = Location.objects.filter(code=WAREHOUSE_CODE).first()
        channel = Channel.objects.filter(slug=DEMO_WALMART_CHANNEL_SLUG).first()
        if channel is None:
            channel = services.create_channel(
                fields=services.ChannelFields(
                    platform=Channel.Platform.WALMART,
                    name="Demo Walmart seller (simulator)",
                    slug=DEMO_WALMART_CHANNEL_SLUG,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=f"{walmart_simulator_url()}/sellers/{DEMO_WALMART_SELLER}",
                    credentials={
                        "client_id": f"demo-{secrets.token_hex(8)}",
                        "client_secret": secrets.token_urlsafe(24),
                    },
                    rate_limit_per_s=10,
                    platform_settings={"feed_threshold": 10},
                ),
                webhook_secret=secrets.token_urlsafe(24),
                location_ids=[warehouse.pk] if warehouse is not None else [],
            )
            _list_demo_skus_by_code(channel)
            self.stdout.write(self.style.SUCCESS(f"Demo Walmart channel created: {channel.slug}"))
        _write_seed_section(
            seed_file,
            "walmart",
            {
                "sellers": [
                    {
                        "seller": DEMO_WALMART_SELLER,
                        "client_id": channel.credentials.get("client_id", ""),
                        "client_secret": channel.credentials.get("client_secret", ""),
                        "webhook_url": f"{base_url()}/webhooks/walmart/{channel.slug}/",
                        "webhook_secret": channel.webhook_secret,
                        # A demo shows a feed settle in a minute, not the platform's half hour.
                        "feed_pickup_s": 10,
                        "feed_processing_s": 60,
                        "items": [
                            {"sku": listing.external_id, "quantity": 0}
                            for listing in channel.listings.all()
                        ],
                    }
                ]
            },
        )
        services.owe_channel_full_sync(channel_id=channel.pk)

    def _ensure_demo_ebay_channel(self, seed_file: Path) -> None:
        """An eBay channel on the local simulator, listing every demo SKU by its code (each
        with one published offer there), its seller added to the seed file."""
        warehouse = Location.objects.filter(code=WAREHOUSE_CODE).first()
        channel = Channel.objects.filter(slug=DEMO_EBAY_CHANNEL_SLUG).first()
        if channel is None:
            cert_id = secrets.token_urlsafe(24)
            channel = services.create_channel(
                fields=services.ChannelFields(
                    platform=Channel.Platform.EBAY,
                    name="Demo eBay seller (simulator)",
                    slug=DEMO_EBAY_CHANNEL_SLUG,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=f"{ebay_simulator_url()}/sellers/{DEMO_EBAY_SELLER}",
                    credentials={
                        "client_id": f"demo-{secrets.token_hex(8)}",
                        "client_secret": cert_id,
                        "refresh_token": f"v^1.1#r^{secrets.token_urlsafe(24)}",
                        "dev_id": f"dev-{secrets.token_hex(8)}",
                        # The Notification API endpoint's, for eBay's challenge GET.
                        "verification_token": secrets.token_urlsafe(32),
                    },
                    rate_limit_per_s=10,
                ),
                # Platform Notifications are signed with the CertID (the client secret).
                webhook_secret=cert_id,
                location_ids=[warehouse.pk] if warehouse is not None else [],
            )
            _list_demo_skus_by_code(channel)
            self.stdout.write(self.style.SUCCESS(f"Demo eBay channel created: {channel.slug}"))
        credentials = channel.credentials
        _write_seed_section(
            seed_file,
            "ebay",
            {
                "sellers": [
                    {
                        "seller": DEMO_EBAY_SELLER,
                        "client_id": credentials.get("client_id", ""),
                        "client_secret": credentials.get("client_secret", ""),
                        "refresh_token": credentials.get("refresh_token", ""),
                        "dev_id": credentials.get("dev_id", ""),
                        "webhook_url": f"{base_url()}/webhooks/ebay/{channel.slug}/",
                        "verification_token": credentials.get("verification_token", ""),
                        "items": [
                            {"sku": listing.external_id, "quantity": 0}
                            for listing in channel.listings.all()
                        ],
                    }
                ]
            },
        )
        services.owe_channel_full_sync(channel_id=channel.pk)

    def _ensure_demo_tiktok_channel(self, seed_file: Path) -> None:
        """A TikTok Shop channel on the local simulator, one product per demo SKU, its SKU
        id the SKU's code; the shop is added to the seed file (the simulator keeps its state
        in memory)."""
        warehouse = Location.objects.filter(code=WAREHOUSE_CODE).first()
        channel = Channel.objects.filter(slug=DEMO_TIKTOK_CHANNEL_SLUG).first()
        if channel is None:
            app_secret = secrets.token_urlsafe(24)
            channel = services.create_channel(
                fields=services.ChannelFields(
                    platform=Channel.Platform.TIKTOK,
                    name="Demo TikTok Shop (simulator)",
                    slug=DEMO_TIKTOK_CHANNEL_SLUG,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=tiktok_simulator_url(),
                    credentials={
                        "app_key": f"demo{secrets.token_hex(6)}",
                        "app_secret": app_secret,
                        "shop_cipher": f"ROW_{secrets.token_hex(8)}",
                        "refresh_token": f"TTP_{secrets.token_urlsafe(24)}",
                    },
                    rate_limit_per_s=10,
                ),
                # §4.1: TikTok Shop signs webhooks with the app secret.
                webhook_secret=app_secret,
                location_ids=[warehouse.pk] if warehouse is not None else [],
            )
            _list_demo_skus_by_code(channel, product_ids=True)
            self.stdout.write(
                self.style.SUCCESS(f"Demo TikTok Shop channel created: {channel.slug}")
            )
        credentials = channel.credentials
        _write_seed_section(
            seed_file,
            "tiktok",
            {
                "shops": [
                    {
                        "shop": DEMO_TIKTOK_SHOP,
                        "app_key": credentials.get("app_key", ""),
                        "app_secret": credentials.get("app_secret", ""),
                        "shop_cipher": credentials.get("shop_cipher", ""),
                        "refresh_token": credentials.get("refresh_token", ""),
                        "webhook_url": f"{base_url()}/webhooks/tiktok/{channel.slug}/",
                        "skus": [
                            {
                                "sku_id": listing.external_id,
                                "product_id": listing.extra_identifiers.get("product_id", ""),
                                "quantity": 0,
                            }
                            for listing in channel.listings.all()
                        ],
                    }
                ]
            },
        )
        services.owe_channel_full_sync(channel_id=channel.pk)

    def _ensure_demo_amazon_channel(self, seed_file: Path) -> None:
        """An Amazon channel on the local simulator selling the warehouse's stock (MFN),
        its notifications on the local SQS queue; the seller is added to the seed file."""
        warehouse = Location.objects.filter(code=WAREHOUSE_CODE).first()
        channel = Channel.objects.filter(slug=DEMO_AMAZON_SLUG).first()
        queue_url = f"{sqs_url()}/{SQS_ACCOUNT}/nventory-{DEMO_AMAZON_SELLER.lower()}"
        if channel is None:
            channel = services.create_channel(
                fields=services.ChannelFields(
                    platform=Channel.Platform.AMAZON,
                    name="Demo Amazon seller (simulator)",
                    slug=DEMO_AMAZON_SLUG,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=amazon_simulator_url(),
                    credentials={
                        "client_id": "amzn1.application-oa2-client.demo",
                        "client_secret": secrets.token_urlsafe(24),
                        "refresh_token": f"Atzr|{secrets.token_urlsafe(24)}",
                        "aws_access_key_id": "demo",
                        "aws_secret_access_key": secrets.token_urlsafe(12),
                    },
                    rate_limit_per_s=5,
                    platform_settings={
                        "seller_id": DEMO_AMAZON_SELLER,
                        "marketplace_id": "ATVPDKIKX0DER",
                        "token_url": f"{amazon_simulator_url()}/auth/o2/token",
                        "sqs_queue_url": queue_url,
                        "sqs_endpoint_url": sqs_url(),
                        "sqs_wait_s": 5,
                    },
                ),
                webhook_secret=secrets.token_urlsafe(24),
                location_ids=[warehouse.pk] if warehouse is not None else [],
            )
            _list_demo_skus_by_code(channel)
            self.stdout.write(self.style.SUCCESS(f"Demo Amazon channel created: {channel.slug}"))
        _write_seed_section(
            seed_file,
            "amazon",
            {
                "sellers": [
                    {
                        "seller_id": DEMO_AMAZON_SELLER,
                        "client_id": channel.credentials.get("client_id", ""),
                        "client_secret": channel.credentials.get("client_secret", ""),
                        "refresh_token": channel.credentials.get("refresh_token", ""),
                        "patch_apply_delay_s": 5,
                        "feed_queue_s": 30,
                        "feed_processing_s": 60,
                        "sqs_queue_url": queue_url,
                        "sqs_endpoint_url": sqs_url(),
                        "listings": [
                            {"sku": listing.external_id, "quantity": 0}
                            for listing in channel.listings.all()
                        ],
                    }
                ]
            },
        )
        services.owe_channel_full_sync(channel_id=channel.pk)

    def _print_urls(self, *, with_simulator: bool = False) -> None:
        base = base_url()
        self.stdout.write(
            "\n"
            f"  Admin:     {base}/admin/\n"
            f"  API:       {base}/api/v1/\n"
            f"  API docs:  {base}/api/docs/\n"
            f"  Console:   {base}/dashboard/ (API tokens: {base}/dashboard/tokens/)\n"
            "  API token: TOKEN=$(.venv/bin/python manage.py issue_api_token operator)\n"
        )
        if with_simulator:
            sim = simulator_url()
            self.stdout.write(
                f"  Shopify simulator: {sim}/_sim/shops/{DEMO_SHOP}/items\n"
                f"  Place a demo order (it arrives as a signed webhook):\n"
                f"    curl -X POST {sim}/_sim/shops/{DEMO_SHOP}/orders "
                f"""-d '{{"lines": [{{"variant_id": 2001, "quantity": 1}}]}}'\n"""
            )
            walmart = walmart_simulator_url()
            self.stdout.write(
                f"  Walmart simulator: {walmart}/_sim/sellers/{DEMO_WALMART_SELLER}/items\n"
                f"    curl -X POST {walmart}/_sim/sellers/{DEMO_WALMART_SELLER}/orders "
                f"""-d '{{"lines": [{{"sku": "MUG-CER-350", "quantity": 1}}]}}'\n"""
            )
            ebay = ebay_simulator_url()
            self.stdout.write(
                f"  eBay simulator: {ebay}/_sim/sellers/{DEMO_EBAY_SELLER}/items\n"
                f"    curl -X POST {ebay}/_sim/sellers/{DEMO_EBAY_SELLER}/orders "
                f"""-d '{{"lines": [{{"sku": "MUG-CER-350", "quantity": 1}}]}}'\n"""
            )
            tiktok = tiktok_simulator_url()
            self.stdout.write(
                f"  TikTok Shop simulator: {tiktok}/_sim/shops/{DEMO_TIKTOK_SHOP}/skus\n"
                f"    curl -X POST {tiktok}/_sim/shops/{DEMO_TIKTOK_SHOP}/orders "
                f"""-d '{{"lines": [{{"sku_id": "MUG-CER-350", "quantity": 1}}]}}'\n"""
            )
            amazon = amazon_simulator_url()
            self.stdout.write(
                f"  Amazon simulator: {amazon}/_sim/sellers/{DEMO_AMAZON_SELLER}/listings\n"
                f"  Place a demo Amazon order (it arrives through SQS):\n"
                f"    curl -X POST {amazon}/_sim/sellers/{DEMO_AMAZON_SELLER}/orders "
                f"""-d '{{"lines": [{{"sku": "{DEMO_SKUS[0].code}", "quantity": 1}}]}}'\n"""
            )
